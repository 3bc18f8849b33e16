import Crypto
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
    let settings: ProjectSettings
    let cache: URL
    let root: URL
    let s3: S3Access

    /// The data files of `repository`, with the S3 settings of `settings`; objects are cached under `root`.
    public init(repository: Repository, settings: ProjectSettings, root: URL) {
        self.repository = repository
        self.settings = settings
        cache = root.appendingPathComponent(".stagecraft/cache/data")
        self.root = root
        s3 = S3Access(settings: settings)
    }

    /// The file at `path` as of `commit` (a repository path), or the S3 object it names.
    public func read(_ path: String, at commit: ObjectID) throws -> File {
        if DataSpec.isObjectStore(path), let place = S3Location(path) { return try object(place) }
        if let bytes = try repository.fileIfPresent(at: path, in: commit) {
            return File(bytes: bytes, sha256: VersionDigest.sha256(bytes), downloadSeconds: 0)
        }
        if let pointer = try DVC.pointer(for: path, exists: { try repository.fileIfPresent(at: $0, in: commit) != nil }) {
            return try tracked(path, pointer: pointer, at: commit)
        }
        let bytes = try repository.file(at: path, in: commit)  // throws: not found
        return File(bytes: bytes, sha256: VersionDigest.sha256(bytes), downloadSeconds: 0)
    }

    // MARK: DVC

    /// A file DVC tracks: its pointer's md5 (through the folder's listing for a directory output), fetched from the
    /// remote `.dvc/config` names at that commit, checked against the md5 and size, and cached by md5.
    private func tracked(_ path: String, pointer: (file: String, relative: String), at commit: ObjectID) throws -> File {
        let text = String(decoding: try repository.file(at: pointer.file, in: commit), as: UTF8.self)
        guard let outputs = DVC.outputs(of: text), !outputs.isEmpty else {
            throw BuildError(.data, "\(pointer.file) is not a DVC pointer (expected outs: with md5 and path)")
        }
        guard let config = try repository.fileIfPresent(at: ".dvc/config", in: commit),
            let remote = DVC.defaultRemote(config: String(decoding: config, as: UTF8.self))
        else {
            throw BuildError(.data, "\(path) is tracked by DVC (\(pointer.file)) but .dvc/config names no remote at \(commit.short)")
        }
        let started = Date()
        var downloaded = false
        let md5: String
        let size: Int?
        if pointer.relative.isEmpty {
            let name = String(path.split(separator: "/").last ?? "")
            guard let output = outputs.first(where: { $0.path == name }) ?? (outputs.count == 1 ? outputs[0] : nil) else {
                throw BuildError(.data, "\(pointer.file) has no output named \(name)")
            }
            (md5, size) = (output.md5, output.size)
        } else {
            guard let folder = outputs.first(where: \.isDirectory) else {
                throw BuildError(.data, "\(pointer.file) tracks no folder, so it cannot hold \(path)")
            }
            let listing = try object(md5: folder.md5, size: nil, for: pointer.file, from: remote, downloaded: &downloaded)
            struct Entry: Decodable {
                var md5: String
                var relpath: String
                var size: Int?
            }
            let entries: [Entry]
            do { entries = try JSONDecoder().decode([Entry].self, from: listing) } catch {
                throw BuildError(.data, "the listing of \(pointer.file) (\(DVC.objectPath(folder.md5))) is not DVC's JSON")
            }
            guard let entry = entries.first(where: { $0.relpath == pointer.relative }) else {
                throw BuildError(.data, "\(path) is not in the folder \(pointer.file) tracks")
            }
            (md5, size) = (entry.md5, entry.size)
        }
        let bytes = try object(md5: md5, size: size, for: path, from: remote, downloaded: &downloaded)
        return File(bytes: bytes, sha256: VersionDigest.sha256(bytes), downloadSeconds: downloaded ? Date().timeIntervalSince(started) : 0)
    }

    /// The DVC object `md5`: from the cache, else from the remote, checked before it is kept.
    private func object(md5: String, size: Int?, for path: String, from remote: DVC.Remote, downloaded: inout Bool) throws -> Data {
        let folder = root.appendingPathComponent(".stagecraft/cache/dvc")
        let cached = folder.appendingPathComponent(md5)
        if let bytes = try? Data(contentsOf: cached, options: .alwaysMapped) { return bytes }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let partial = folder.appendingPathComponent(".\(md5).\(UUID().uuidString).part")
        defer { try? FileManager.default.removeItem(at: partial) }
        let objectPath = DVC.objectPath(md5)
        let place: String
        if let bucket = S3Location(remote.url) {
            let key = (bucket.key.hasSuffix("/") || bucket.key.isEmpty ? bucket.key : bucket.key + "/") + objectPath
            place = "s3://\(bucket.bucket)/\(key)"
            let access = remote.endpoint.flatMap(URL.init(string:)).map { S3Access(settings: settings, endpoint: $0) } ?? s3
            let name = bucket.bucket
            _ = try access.run(for: "the DVC remote '\(remote.name)' (\(remote.url))") {
                try await $0.download(bucket: name, key: key, to: partial)
            }
        } else if remote.url.contains("://") {
            throw BuildError(
                .data,
                "\(path): the DVC remote '\(remote.name)' is \(remote.url); Stagecraft reads DVC remotes that are a folder or "
                    + "s3:// only")
        } else {
            // A folder: absolute, or relative to .dvc/ (as DVC reads it).
            let base = remote.url.hasPrefix("/") ? URL(fileURLWithPath: remote.url) : root.appendingPathComponent(".dvc/\(remote.url)")
            let source = base.appendingPathComponent(objectPath)
            place = source.standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: source.path) else {
                throw BuildError(.data, "\(path): the DVC remote '\(remote.name)' has no object \(objectPath) (\(place)); run dvc push")
            }
            try FileManager.default.copyItem(at: source, to: partial)
        }
        downloaded = true
        let bytes = try Data(contentsOf: partial)
        let actual = Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        let expected = md5.hasSuffix(".dir") ? String(md5.dropLast(4)) : md5
        guard actual == expected, size.map({ $0 == bytes.count }) ?? true else {
            throw BuildError(
                .data,
                "\(path): the DVC object \(place) has md5 \(actual) (\(bytes.count) bytes), expected md5 \(expected)"
                    + (size.map { " (\($0) bytes)" } ?? "") + ": the remote's copy is damaged; push it again with dvc push")
        }
        try FileManager.default.moveItem(at: partial, to: cached)
        return bytes
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
        let file = folder.appendingPathComponent("object")
        let meta = folder.appendingPathComponent("entry.json")
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
