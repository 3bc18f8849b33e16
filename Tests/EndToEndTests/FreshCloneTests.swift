import Foundation
import StagecraftTesting
import Testing

/// The README's two commands in order on a fresh clone: the first commits promotions into the clone, and the tests
/// the second runs must not see them.
@Suite struct FreshCloneTests {
    /// The example as `scripts/example` in `checkout` writes it, file by file.
    func shippedExample(from checkout: String) throws -> [String: Data] {
        let scratch = try ScratchDirectory("shipped")
        let output = try ProcessRunner.run(checkout + "/scripts/example", [scratch.path])
        #expect(output.status == 0, "\(output.stderr)")
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: scratch.path)
        while let relative = enumerator?.nextObject() as? String {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: scratch.appending(relative), isDirectory: &isFolder), !isFolder.boolValue {
                files[relative] = try Data(contentsOf: URL(fileURLWithPath: scratch.appending(relative)))
            }
        }
        return files
    }

    @Test func theFirstCommandsPromotionsDoNotReachTheExampleTheTestsUse() throws {
        let scratch = try ScratchDirectory("fresh-clone")
        let clone = scratch.appending("stagecraft")
        #expect(try ProcessRunner.run("git", ["clone", "-q", Fixtures.packageRoot, clone]).status == 0)
        let repository = GitFolder(path: clone)
        // Free ports instead of 8101–8103 (a server of the user's may be there), and latency gates a loaded machine
        // meets; committed, as a user's own edit would be.
        for name in ["dev", "qa", "prod"] {
            let path = clone + "/environments/\(name).yaml"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: #"port: \d+"#, with: "port: \(try Loopback.freePort())", options: .regularExpression)
                .replacingOccurrences(of: #"latencyP99Ms: "<= \d+""#, with: #"latencyP99Ms: "<= 5000""#, options: .regularExpression)
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
        try repository.git(["-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-qam", "free ports"])
        let before = try shippedExample(from: clone)
        #expect(before["environments/dev.yaml"].map { String(decoding: $0, as: UTF8.self).contains("version: ~") } == true)

        // The first command (its reconcile; the binary under test stands for `swift run -c release stagecraft`).
        let first = try ProcessRunner.run(Fixtures.stagecraftBinary, ["reconcile", "--env", "dev"], in: clone,
                                          environment: ["GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com"])
        defer { _ = try? ProcessRunner.run(Fixtures.stagecraftBinary, ["stop", "--env", "dev"], in: clone) }
        #expect(first.status == 0, "\(first.stderr)")
        // (A checkout where the first command already ran has the pins committed: then there is nothing to promote.)
        let pinned = try String(contentsOfFile: clone + "/environments/dev.yaml", encoding: .utf8)
        #expect(!pinned.contains("version: ~"), "the first command pins both models in dev")

        // What the second command's tests build their repositories from is the example as shipped, byte for byte.
        let after = try shippedExample(from: clone)
        #expect(after.keys.sorted() == before.keys.sorted())
        for (path, data) in before { #expect(after[path] == data, "\(path) differs after the first command") }
    }
}

/// `git` in a folder that is not a `ScratchRepository` (a clone made by a test).
struct GitFolder {
    let path: String

    @discardableResult
    func git(_ arguments: [String]) throws -> String {
        let output = try ProcessRunner.run("git", ["-C", path] + arguments)
        guard output.status == 0 else { throw LoopbackError(message: "git \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)") }
        return output.stdout
    }
}
