public import Foundation

/// An S3-compatible server for tests: moto's `moto_server` (from the package index, in `.venv-s3`, which
/// `scripts/setup --for-tests` makes), on a free port of 127.0.0.1, stopped on `stop()` or release. Nothing is
/// shared between servers: each test starts its own and finds it empty.
public final class S3Server: @unchecked Sendable {
    public let port: Int
    /// The address it listens on (`0.0.0.0`: every address of this network namespace, for other test hosts).
    public let host: String
    private var process: BackgroundProcess

    /// The tests' Python, with boto3, botocore and moto.
    public static var python: String { Fixtures.packageRoot + "/.venv-s3/bin/python" }
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: Fixtures.packageRoot + "/.venv-s3/bin/moto_server") }
    public static let missing = "the S3 test tools are missing: run scripts/setup --for-tests (scripts/test does; it makes .venv-s3)"

    /// Credentials the server accepts (moto accepts any); what a test puts in the environment of what it runs.
    public static let credentials = [
        "AWS_ACCESS_KEY_ID": "AKIASTAGECRAFTTEST", "AWS_SECRET_ACCESS_KEY": "stagecraft-test-secret-7f3a9c",
        "AWS_REGION": "us-east-1",
    ]

    public init(host: String = "127.0.0.1") throws {
        port = try Loopback.freePort()
        self.host = host
        process = try Self.start(host: host, port: port)
    }

    private static func start(host: String, port: Int) throws -> BackgroundProcess {
        let process = try BackgroundProcess(
            Fixtures.packageRoot + "/.venv-s3/bin/moto_server", ["-H", host, "-p", "\(port)"],
            environment: ["MOTO_ALLOW_NONEXISTENT_REGION": "true"])
        try Loopback.waitForListener(port: port, timeout: 30)
        return process
    }

    /// Starts a stopped server again on the same port. moto keeps objects in memory: it comes back empty.
    public func start() throws { process = try Self.start(host: host, port: port) }

    /// `http://127.0.0.1:<port>`.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// The environment a process needs to reach this server with boto3 or the AWS CLI.
    public var environment: [String: String] { Self.credentials.merging(["AWS_ENDPOINT_URL": endpoint]) { $1 } }

    /// Runs Python `code` with boto3 (a client `s3` is ready, on this server) and returns what it prints.
    @discardableResult
    public func boto3(_ code: String, arguments: [String] = []) throws -> String {
        let prelude = """
            import sys, hashlib, boto3
            from botocore.config import Config
            s3 = boto3.client("s3", endpoint_url="\(endpoint)", config=Config(s3={"addressing_style": "path"}))

            """
        let output = try ProcessRunner.run(Self.python, ["-c", prelude + code] + arguments, environment: environment)
        guard output.status == 0 else { throw ProcessFailure(command: "python (boto3)", output: output) }
        return output.stdout
    }

    /// Makes a bucket.
    public func createBucket(_ name: String) throws { try boto3("s3.create_bucket(Bucket=\"\(name)\")") }

    /// Stops the server (a test of an outage), or at the end.
    public func stop() { process.stop(grace: 0) }
}
