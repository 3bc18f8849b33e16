import Foundation
import ObjectStorage
import StagecraftTesting
import Testing

/// The client against a real S3-compatible server (moto), checked with boto3: what one writes the other reads byte for
/// byte.
@Suite(.serialized) struct S3ClientTests {
    static func client(_ server: S3Server, attempts: Int = 5) -> S3Client {
        var client = S3Client(
            endpoint: S3Endpoint(url: URL(string: server.endpoint), region: "us-east-1", pathStyle: true),
            credentials: CredentialChain(environment: S3Server.credentials).credentials()!, attempts: attempts)
        client.baseBackoff = .milliseconds(20)
        return client
    }

    @Test func roundTripsWithBoto3() async throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let server = try S3Server()
        defer { server.stop() }
        try server.createBucket("models")
        let s3 = Self.client(server)
        let scratch = try ScratchDirectory("s3")

        // A small object, a unicode key: boto3 reads what was put.
        let small = Data("id,label\n1,ja\n2,nein\n".utf8)
        try await s3.put(bucket: "models", key: "data/ünï cødé+1.csv", data: small)
        let seen = try server.boto3(
            "print(hashlib.sha256(s3.get_object(Bucket='models', Key=sys.argv[1])['Body'].read()).hexdigest())",
            arguments: ["data/ünï cødé+1.csv"])
        #expect(seen.trimmingCharacters(in: .whitespacesAndNewlines) == SigV4.payloadHash(small))

        // A file above the multipart threshold goes in parts; boto3 reads it whole and the same.
        var big = Data(count: S3Client.multipartThreshold + 3 * 1024 * 1024 + 17)
        for index in stride(from: 0, to: big.count, by: 4096) { big[index] = UInt8(truncatingIfNeeded: index / 4096) }
        let bigFile = URL(fileURLWithPath: scratch.appending("big.bin"))
        try big.write(to: bigFile)
        let sha = try await s3.upload(bucket: "models", key: "big/train.bin", file: bigFile)
        #expect(sha == SigV4.payloadHash(big))
        let parts = try server.boto3(
            """
            head = s3.head_object(Bucket='models', Key='big/train.bin')
            body = s3.get_object(Bucket='models', Key='big/train.bin')['Body'].read()
            print(hashlib.sha256(body).hexdigest(), head['ETag'])
            """)
        let fields = parts.split(separator: " ")
        #expect(String(fields[0]) == sha)
        #expect(fields[1].contains("-2"), "a multipart ETag names its part count: \(fields[1])")

        // The other way: boto3 writes, the client streams it to disk and checks its sha256.
        try server.boto3(
            "s3.put_object(Bucket='models', Key='from/boto3 ✓.bin', Body=bytes(range(256)) * 5000)")
        let expected = SigV4.payloadHash(Data((0..<5000).flatMap { _ in (0...255).map(UInt8.init) }))
        let target = URL(fileURLWithPath: scratch.appending("down.bin"))
        let got = try await s3.download(bucket: "models", key: "from/boto3 ✓.bin", to: target, sha256: expected)
        #expect(got.size == 1_280_000 && got.sha256 == expected)
        #expect(SigV4.payloadHash(try Data(contentsOf: target)) == expected)

        // A download that is not what was expected leaves no file and says what it got.
        let wrong = URL(fileURLWithPath: scratch.appending("wrong.bin"))
        await #expect {
            try await s3.download(bucket: "models", key: "from/boto3 ✓.bin", to: wrong, sha256: String(repeating: "0", count: 64))
        } throws: { error in
            guard let error = error as? S3Error else { return false }
            return error.code == .contentMismatch && error.message.contains(expected)
        }
        #expect(!FileManager.default.fileExists(atPath: wrong.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).allSatisfy { !$0.hasSuffix(".part") })

        // Head, and a missing object.
        #expect(try await s3.head(bucket: "models", key: "big/train.bin")?.size == big.count)
        #expect(try await s3.head(bucket: "models", key: "no/such") == nil)
        await #expect { try await s3.get(bucket: "models", key: "no/such") } throws: { ($0 as? S3Error)?.code == .notFound }
    }

    @Test func listsPageByPageAndDeletes() async throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let server = try S3Server()
        defer { server.stop() }
        try server.createBucket("models")
        let s3 = Self.client(server)
        try server.boto3(
            """
            for i in range(25):
                s3.put_object(Bucket='models', Key=f'runs/{i:02d}/model.json', Body=b'x' * i)
            s3.put_object(Bucket='models', Key='other/a', Body=b'')
            """)
        let listed = try await s3.list(bucket: "models", prefix: "runs/", pageSize: 10)
        #expect(listed.map(\.key) == (0..<25).map { String(format: "runs/%02d/model.json", $0) })
        #expect(listed.map(\.size) == Array(0..<25))
        // Conditional writes keep what is there.
        #expect(try await s3.put(bucket: "models", key: "runs/00/model.json", data: Data("new".utf8), onlyIfAbsent: true) == .alreadyThere)
        #expect(try await s3.put(bucket: "models", key: "runs/99/model.json", data: Data("new".utf8), onlyIfAbsent: true) == .stored)
        #expect(try await s3.get(bucket: "models", key: "runs/00/model.json").isEmpty)

        try await s3.delete(bucket: "models", keys: listed.prefix(20).map(\.key) + ["never/there"])
        let left = try server.boto3(
            "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='models').get('Contents', [])))")
        #expect(left.contains("runs/20/model.json") && left.contains("other/a") && !left.contains("runs/19/"))
    }

    @Test func anUnreachableServerIsAClearErrorWithoutSecrets() async throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let server = try S3Server()
        try server.createBucket("models")
        server.stop()
        let s3 = Self.client(server, attempts: 3)
        let started = Date()
        do {
            try await s3.put(bucket: "models", key: "k", data: Data("x".utf8))
            Issue.record("a put to a stopped server succeeded")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.description.contains("s3://models/k") && error.description.contains("3 attempts"), "\(error)")
            for secret in S3Server.credentials.values where secret.count > 12 { #expect(!error.description.contains(secret)) }
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }
}
