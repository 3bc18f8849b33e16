public import Foundation

/// Paths of the package under test.
public enum Fixtures {
    /// The package root (the folder holding Package.swift), found from this source file's location.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// The `stagecraft` executable built beside the running test bundle.
    public static var stagecraftBinary: String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = exe.deletingLastPathComponent()
        // The test bundle may be a folder (`*.xctest/…`): walk up until the binary is found.
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("stagecraft").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return packageRoot + "/.build/debug/stagecraft"
    }
}

extension ScratchRepository {
    /// A repository holding a copy of the project root's example (manifests, environments, data, settings),
    /// committed on `main`.
    public static func example() throws -> ScratchRepository {
        let scratch = try ScratchRepository(label: "example")
        for item in ["manifests", "environments", "data", "stagecraft.yaml"] {
            try FileManager.default.copyItem(atPath: Fixtures.packageRoot + "/" + item, toPath: scratch.directory.appending(item))
        }
        try scratch.directory.write(".stagecraft/\n", to: ".gitignore")
        try scratch.commit([:], message: "example")
        return scratch
    }
}

extension ScratchRepository {
    /// Pins the first 12 digits of `version` of `model` in `environments/<environment>.yaml`, with HEAD as its
    /// source, by a commit. The entry must be an unpinned one (`version: ~` then `source: ~`), as in the example.
    public func pin(_ model: String, version: String, in environment: String = "dev") throws {
        let path = "environments/\(environment).yaml"
        var lines = try directory.read(path).components(separatedBy: "\n")
        guard let entry = lines.firstIndex(of: "    \(model):"), entry + 2 < lines.count,
              lines[entry + 1].hasPrefix("      version: ~"), lines[entry + 2].hasPrefix("      source: ~") else {
            throw LoopbackError(message: "\(path) has no unpinned entry for '\(model)'")
        }
        lines[entry + 1] = "      version: \(version.prefix(12))"
        lines[entry + 2] = "      source: \(try gitLine(["rev-parse", "--short=12", "HEAD"]))"
        try commit([path: lines.joined(separator: "\n")], message: "pin \(model) in \(environment)")
    }
}
