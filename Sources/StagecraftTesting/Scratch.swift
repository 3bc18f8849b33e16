public import Foundation

/// A temporary directory, removed when the value is released.
public final class ScratchDirectory: @unchecked Sendable {
    /// The directory's absolute path, without a trailing slash.
    public let path: String

    public init(_ label: String = "stagecraft") throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        self.path = base.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The absolute path of `relative` inside this directory.
    public func appending(_ relative: String) -> String { path + "/" + relative }

    /// Writes `text` to `relative`, creating folders as needed.
    public func write(_ text: String, to relative: String) throws {
        let url = URL(fileURLWithPath: appending(relative))
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    /// The text of the file at `relative`.
    public func read(_ relative: String) throws -> String {
        try String(contentsOfFile: appending(relative), encoding: .utf8)
    }

    /// Sends `signal` to every process whose pid file (`*.pid`) is anywhere under this directory: the servers that
    /// reconciles run from here started (a host's folder, wherever its repository cache put them).
    public func signalServers(_ signal: Int32 = SIGTERM) {
        for relative in FileManager.default.enumerator(atPath: path)?.compactMap({ $0 as? String }) ?? [] where relative.hasSuffix(".pid") {
            guard let text = try? read(relative), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            kill(pid, signal)
        }
    }
}

/// A real git repository in a temporary directory, driven through the `git` CLI.
public final class ScratchRepository: @unchecked Sendable {
    public let directory: ScratchDirectory
    public var path: String { directory.path }
    /// Variables every `stagecraft` run in this repository gets (credentials of a test's S3 server).
    public var environment: [String: String] = [:]

    deinit { stopServers() }

    /// Creates a repository (`git init -b main`) with a fixed identity, optionally bare.
    public init(bare: Bool = false, label: String = "repo") throws {
        directory = try ScratchDirectory(label)
        try git(["init", "-q", "-b", "main"] + (bare ? ["--bare"] : []))
        try git(["config", "user.name", "Test Author"])
        try git(["config", "user.email", "author@example.com"])
        try git(["config", "commit.gpgsign", "false"])
    }

    /// A clone of `other` (another machine's working copy), with the same identity and no `.stagecraft/`.
    public init(cloning other: ScratchRepository, label: String = "clone") throws {
        directory = try ScratchDirectory(label)
        environment = other.environment
        let output = try ProcessRunner.run("git", ["clone", "-q", other.path, directory.path])
        guard output.status == 0 else { throw ProcessFailure(command: "git clone", output: output) }
        try git(["config", "user.name", "Test Author"])
        try git(["config", "user.email", "author@example.com"])
        try git(["config", "commit.gpgsign", "false"])
    }

    /// Runs `git` in the repository and returns its standard output; throws when it exits non-zero.
    @discardableResult
    public func git(_ arguments: [String], input: String? = nil, environment: [String: String] = [:]) throws -> String {
        let output = try ProcessRunner.run("git", ["-C", path] + arguments, environment: environment, input: input.map { Data($0.utf8) })
        guard output.status == 0 else { throw ProcessFailure(command: "git " + arguments.joined(separator: " "), output: output) }
        return output.stdout
    }

    /// The trimmed output of `git` in the repository.
    public func gitLine(_ arguments: [String]) throws -> String {
        try git(arguments).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes files into the working tree, stages them and commits; returns the new commit's hash.
    @discardableResult
    public func commit(_ files: [String: String], message: String = "change", date: Date? = nil) throws -> String {
        for (relative, text) in files { try directory.write(text, to: relative) }
        try git(["add", "-A"])
        var environment: [String: String] = [:]
        if let date {
            let stamp = "\(Int(date.timeIntervalSince1970)) +0000"
            environment = ["GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp]
        }
        try git(["commit", "-q", "--allow-empty", "-m", message], environment: environment)
        return try gitLine(["rev-parse", "HEAD"])
    }

    /// Appends `count` commits quickly with `git fast-import`: commit `i` writes `file(i)` with `contents(i)`,
    /// one second apart from `start`. Returns nothing; read the hashes back with `git log`.
    public func fastImport(count: Int, branch: String = "main", start: Int = 1_700_000_000,
                           file: (Int) -> String, contents: (Int) -> String) throws {
        var stream = ""
        let hasParent = (try? gitLine(["rev-parse", "--verify", "-q", "refs/heads/\(branch)"])).map { !$0.isEmpty } ?? false
        for i in 0..<count {
            let body = contents(i)
            let message = "commit \(i)"
            stream += "commit refs/heads/\(branch)\n"
            stream += "committer Importer <importer@example.com> \(start + i) +0000\n"
            stream += "data \(message.utf8.count)\n\(message)\n"
            if i == 0 && hasParent { stream += "from refs/heads/\(branch)^0\n" }
            stream += "M 100644 inline \(file(i))\n"
            stream += "data \(body.utf8.count)\n\(body)\n\n"
        }
        try git(["fast-import", "--quiet"], input: stream)
        if (try? gitLine(["rev-parse", "--is-bare-repository"])) == "false" { try git(["reset", "-q", "--hard", branch]) }
    }
}
