public import Foundation
public import GitStore
public import Manifests
import ObjectStorage
import Registry

/// A manifest's data files, wherever they are: committed in git, or objects in S3 (`s3://bucket/key`), read through a
/// cache under `.stagecraft/cache/data/`. The version digest covers each file's sha256 whatever its source.
public struct DataFiles: Sendable {
    /// One data file's bytes and their sha256.
    public struct File: Sendable {
        public var bytes: Data
        public var sha256: String
        /// Seconds spent downloading it (0 when it came from git or the cache).
        public var downloadSeconds: Double
    }

    let repository: Repository
    let cache: URL
    let s3: S3Access

    /// The data files of `repository`, with the S3 settings of `settings`; objects are cached under `root`.
    public init(repository: Repository, settings: ProjectSettings, root: URL) {
        self.repository = repository
        cache = root.appendingPathComponent(".stagecraft/cache/data")
        s3 = S3Access(settings: settings)
    }

    /// The file at `path` as of `commit` (a repository path), or the S3 object it names.
    public func read(_ path: String, at commit: ObjectID) throws -> File {
        guard DataSpec.isObjectStore(path), let place = S3Location(path) else {
            let bytes = try repository.file(at: path, in: commit)
            return File(bytes: bytes, sha256: VersionDigest.sha256(bytes), downloadSeconds: 0)
        }
        return try object(place)
    }

    /// Where credentials are looked for, for messages.
    public var credentialPlaces: String { s3.chain.places }

    /// Whether the object exists; nil when no credentials are available to ask.
    public func exists(_ path: String) throws -> Bool? {
        guard let place = S3Location(path), s3.client != nil else { return nil }
        return try s3.run(for: path) { try await $0.head(bucket: place.bucket, key: place.key) } != nil
    }

    /// What the cache keeps beside an object: enough to know it is the current one without downloading it again.
    struct Entry: Codable {
        var etag: String?
        var size: Int
        var sha256: String
    }

    /// The object's bytes: from the cache when S3 still has the same object there (same ETag and size), else
    /// downloaded (streamed to disk, hashed as it arrives) into the cache first.
    private func object(_ place: S3Location) throws -> File {
        let where_ = place.description
        guard let head = try s3.run(for: where_, { try await $0.head(bucket: place.bucket, key: place.key) }) else {
            throw S3Error(.notFound, "data file \(where_) does not exist")
        }
        let folder = cache.appendingPathComponent(VersionDigest.sha256(Data(where_.utf8)))
        let file = folder.appendingPathComponent("object"), meta = folder.appendingPathComponent("entry.json")
        if let entry = try? JSONDecoder().decode(Entry.self, from: Data(contentsOf: meta)), entry.etag == head.etag,
            entry.size == head.size, let bytes = try? Data(contentsOf: file, options: .alwaysMapped), bytes.count == entry.size
        {
            return File(bytes: bytes, sha256: entry.sha256, downloadSeconds: 0)
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let started = Date()
        let got = try s3.run(for: where_) { try await $0.download(bucket: place.bucket, key: place.key, to: file) }
        let seconds = Date().timeIntervalSince(started)
        try JSONEncoder().encode(Entry(etag: head.etag, size: got.size, sha256: got.sha256)).write(to: meta, options: .atomic)
        return File(bytes: try Data(contentsOf: file, options: .alwaysMapped), sha256: got.sha256, downloadSeconds: seconds)
    }
}
