public import Foundation
public import Manifests
public import ObjectStorage
public import Registry

/// S3 as the project's settings name it (`spec.s3`), with credentials from the standard places. Calls block the
/// calling thread (the artifact store, the builder and the engine are synchronous and run on threads of their own).
public struct S3Access: Sendable {
    /// Nil when no credentials were found: every call then fails saying where they are looked for.
    public let client: S3Client?
    let chain: CredentialChain

    /// - Parameter endpoint: a server other than the settings' (a DVC remote's `endpointurl`), reached path-style.
    public init(
        settings: ProjectSettings, endpoint other: URL? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        chain = CredentialChain(environment: environment)
        let endpoint = S3Endpoint(
            url: other ?? settings.s3.endpoint.flatMap(URL.init(string:)), region: settings.s3.region ?? chain.region() ?? "us-east-1",
            pathStyle: other != nil || settings.s3.pathStyle)
        client = chain.credentials().map { S3Client(endpoint: endpoint, credentials: $0) }
    }

    /// Runs `body` with the client and waits for it.
    /// - Throws: ``S3Error`` (`noCredentials`) naming where credentials are looked for, or what `body` throws.
    public func run<T: Sendable>(for place: String, _ body: @escaping @Sendable (S3Client) async throws -> T) throws -> T {
        guard let client else {
            throw S3Error(.noCredentials, "no AWS credentials for \(place): set \(chain.places)")
        }
        return try Blocking.wait { try await body(client) }
    }
}

/// Versions in S3: `<prefix>/<digest>/{model.json, metrics.json, build.json}`.
public struct S3Artifacts: ArtifactRemote {
    public let place: S3Location
    let access: S3Access

    /// The remote of `settings.artifacts` (an `s3://` location), with credentials from the standard places.
    public init?(settings: ProjectSettings, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard var place = S3Location(settings.artifacts) else { return nil }
        while place.key.hasSuffix("/") { place.key.removeLast() }
        self.place = place
        access = S3Access(settings: settings, environment: environment)
    }

    public var location: String { place.description }

    private func key(_ digest: String, _ file: String = "") -> String {
        (place.key.isEmpty ? "" : place.key + "/") + digest + "/" + file
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable (S3Client) async throws -> T) throws -> T {
        try access.run(for: location, body)
    }

    public func fetch(_ digest: String, into folder: URL) throws -> Bool {
        let bucket = place.bucket
        let buildKey = key(digest, "build.json")
        let build: Data
        do {
            build = try run { try await $0.get(bucket: bucket, key: buildKey, limit: 16 << 20) }
        } catch let error as S3Error where error.code == .notFound {
            return false
        }
        // The artifact store checks each file against the sha256 that build.json lists, once all are here.
        for name in Self.files(listedIn: build) {
            try FileManager.default.createDirectory(
                at: folder.appendingPathComponent(name).deletingLastPathComponent(), withIntermediateDirectories: true)
            let objectKey = key(digest, name)
            do {
                _ = try run { try await $0.download(bucket: bucket, key: objectKey, to: folder.appendingPathComponent(name)) }
            } catch let error as S3Error where error.code == .notFound {
                return false
            }
        }
        try build.write(to: folder.appendingPathComponent("build.json"))
        return true
    }

    public func publish(_ digest: String, from folder: URL) throws -> Bool {
        let bucket = place.bucket
        if try run({ try await $0.head(bucket: bucket, key: key(digest, "build.json")) }) != nil { return false }
        let build = try Data(contentsOf: folder.appendingPathComponent("build.json"))
        for name in Self.files(listedIn: build) {
            let objectKey = key(digest, name)
            _ = try run { try await $0.upload(bucket: bucket, key: objectKey, file: folder.appendingPathComponent(name)) }
        }
        let buildKey = key(digest, "build.json")
        return try run { try await $0.put(bucket: bucket, key: buildKey, data: build, onlyIfAbsent: true) } == .stored
    }

    /// The files of a version besides `build.json`, as its `build.json` lists them: the model and metrics files, and the
    /// output files of a trainer command under `model/`.
    static func files(listedIn build: Data) -> [String] {
        struct Outputs: Decodable { var outputs: [String: String]? }
        let outputs = (try? JSONDecoder().decode(Outputs.self, from: build))?.outputs ?? [:]
        return ["model.json", "metrics.json"] + outputs.keys.sorted().map { "\(ArtifactStore.outputFolder)/\($0)" }
    }

    public func digests(prefix: String) throws -> [String] {
        let bucket = place.bucket
        let listed = try run { [self] in try await $0.list(bucket: bucket, prefix: key(prefix).dropLast().description) }
        return listed.compactMap { object in
            let parts = object.key.split(separator: "/")
            guard parts.count >= 2, parts.last == "build.json" else { return nil }
            return String(parts[parts.count - 2])
        }.sorted()
    }

    public func sizes() throws -> [String: Int] {
        let bucket = place.bucket
        let prefix = place.key.isEmpty ? "" : place.key + "/"
        var sizes: [String: Int] = [:]
        for object in try run({ try await $0.list(bucket: bucket, prefix: prefix) }) {
            let parts = object.key.dropFirst(prefix.count).split(separator: "/")
            guard parts.count == 2, parts[0].count == 64 else { continue }
            sizes[String(parts[0]), default: 0] += object.size
        }
        return sizes
    }

    public func delete(_ digests: [String]) throws {
        let bucket = place.bucket
        let keys = digests.flatMap { digest in ArtifactStore.files.map { key(digest, $0) } }
        try run { try await $0.delete(bucket: bucket, keys: keys) }
    }
}
