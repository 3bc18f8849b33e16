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
