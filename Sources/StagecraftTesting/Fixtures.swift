public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

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

    /// The Python of the inference clients' virtual environment (tritonclient, kserve, requests), nil when it is
    /// missing (then a test records ``clientsMissing``).
    public static var clientsPython: String? {
        let python = packageRoot + "/.venv-clients/bin/python"
        return FileManager.default.isExecutableFile(atPath: python) ? python : nil
    }

    /// The `bin` folder of the bring-your-own example's environment (scikit-learn, MLServer 1.7), nil when missing.
    public static var byoBin: String? {
        let bin = packageRoot + "/.venv-byo/bin"
        return FileManager.default.isExecutableFile(atPath: bin + "/mlserver") ? bin : nil
    }

    /// What a test that needs ``byoBin`` records when it is missing.
    public static let byoMissing =
        "the bring-your-own example's environment is missing: run scripts/setup --for-tests (scripts/test does; it creates .venv-byo)"

    /// What a test that needs ``clientsPython`` records when it is missing.
    public static let clientsMissing =
        "the clients' virtual environment is missing: run scripts/setup --for-tests (scripts/test does; it creates .venv-clients)"
}

extension ScratchRepository {
    /// A repository holding the project root's example as shipped (manifests, environments, data, settings as
    /// committed, every pin cleared: `scripts/example`), committed on `main`. It does not depend on what the checkout
    /// holds: the README's first command commits promotions into it.
    public static func example() throws -> ScratchRepository {
        let scratch = try ScratchRepository(label: "example")
        let output = try ProcessRunner.run(Fixtures.packageRoot + "/scripts/example", [scratch.path])
        guard output.status == 0 else { throw ProcessFailure(command: "scripts/example", output: output) }
        try scratch.directory.write(".stagecraft/\n", to: ".gitignore")
        try scratch.commit([:], message: "example")
        return scratch
    }
}

extension ScratchRepository {
    /// A repository holding `examples/byo-sklearn` (model `tumor`: train.py, MLServer) with the breast-cancer data,
    /// committed on `main`, its commands run with the example's environment first on `PATH`.
    public static func byoExample(bin: String) throws -> ScratchRepository {
        let scratch = try ScratchRepository(label: "byo")
        let output = try ProcessRunner.run(
            Fixtures.packageRoot + "/examples/byo-sklearn/create", [scratch.path], environment: scratch.environment)
        guard output.status == 0 else { throw ProcessFailure(command: "examples/byo-sklearn/create", output: output) }
        scratch.environment["PATH"] = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        return scratch
    }
}

extension ScratchRepository {
    /// Pins the first 12 digits of `version` of `model` in `environments/<environment>.yaml`, with HEAD as its
    /// source, by a commit. The entry must be an unpinned one (`version: ~` then `source: ~`), as in the example.
    public func pin(_ model: String, version: String, in environment: String = "dev") throws {
        let path = "environments/\(environment).yaml"
        guard try directory.read(path).contains("    \(model):\n      version: ~") else {
            throw LoopbackError(message: "\(path) has no unpinned entry for '\(model)'")
        }
        try setPin(model, version: version, source: try gitLine(["rev-parse", "HEAD"]), in: environment)
    }
}

extension ScratchRepository {
    /// Gives every environment a free port on 127.0.0.1 (and a free gRPC port, when it has one), as tests run side by
    /// side, by a commit; returns the HTTP ports by environment.
    /// With `relaxingLatencyGates`, `latencyP99Ms` gates become `<= 5000`: the tests share two cores, where a p99 of a
    /// few milliseconds can reach tens, and a test about something else must not fail on that.
    @discardableResult
    public func useFreePorts(relaxingLatencyGates: Bool = true) throws -> [String: Int] {
        var ports: [String: Int] = [:]
        var files: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.appending("environments")) where name.hasSuffix(".yaml") {
            let path = "environments/\(name)"
            let port = try Loopback.freePort()
            let text = try directory.read(path)
            guard let range = text.range(of: #"port: \d+"#, options: .regularExpression) else { continue }
            var edited = text.replacingCharacters(in: range, with: "port: \(port)")
            if let grpc = edited.range(of: #"grpcPort: \d+"#, options: .regularExpression) {
                edited = edited.replacingCharacters(in: grpc, with: "grpcPort: \(try Loopback.freePort())")
            }
            if relaxingLatencyGates {
                edited = edited.replacingOccurrences(
                    of: #"latencyP99Ms: "<= \d+""#, with: #"latencyP99Ms: "<= 5000""#, options: .regularExpression)
            }
            files[path] = edited
            ports[String(name.dropLast(5))] = port
        }
        try commit(files, message: "use free ports")
        return ports
    }

    /// Sets the `version` and `source` lines of `model` in `environments/<environment>.yaml` by a commit. A forced pin
    /// says so in a `Stagecraft-Forced` trailer, as `promote --force` does: the reconciler then deploys it whether or not
    /// the environment's upstream verified the version; an unforced one waits for that verification.
    public func setPin(_ model: String, version: String, source: String, in environment: String, forced: Bool = true) throws {
        let path = "environments/\(environment).yaml"
        var lines = try directory.read(path).components(separatedBy: "\n")
        guard let entry = lines.firstIndex(of: "    \(model):"), entry + 2 < lines.count,
            lines[entry + 1].hasPrefix("      version:"), lines[entry + 2].hasPrefix("      source:")
        else {
            throw LoopbackError(message: "\(path) has no entry for '\(model)' with version and source lines")
        }
        lines[entry + 1] = "      version: \(version.prefix(12))"
        lines[entry + 2] = "      source: \(source.prefix(12))"
        let message =
            "pin \(model) \(version.prefix(12)) in \(environment)" + (forced ? "\n\nStagecraft-Forced: pinned by hand in a test" : "")
        try commit([path: lines.joined(separator: "\n")], message: message)
    }

    /// Runs the `stagecraft` binary in the repository.
    @discardableResult
    public func stagecraft(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessOutput {
        try ProcessRunner.run(Fixtures.stagecraftBinary, arguments, in: path, environment: self.environment.merging(environment) { $1 })
    }

    /// Stops every server a test started in this repository (their pid files under `.stagecraft/run/`).
    public func stopServers() {
        let folder = directory.appending(".stagecraft/run")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".pid") {
            guard let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { continue }
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while kill(pid, 0) == 0 && Date() < deadline { usleep(10_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
    }
}

/// V2 infer requests for the penguins example's test rows.
public enum PenguinRequests {
    /// `count` requests (the test rows in turn), with ids `<prefix><index>` and `bill_length_mm` shifted by `shift` mm
    /// (drift); each with the row's species (its true label).
    public static func make(count: Int, idPrefix: String, billLengthShift shift: Double) throws
        -> [(id: String, body: Data, species: String)]
    {
        let file = Fixtures.packageRoot + "/data/penguins/test.csv"
        let test = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        let names = test[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return (0..<count).map { index in
            let values = test[1 + index % (test.count - 1)].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let inputs = zip(names, values).filter { $0.0 != "species" && $0.0 != "year" && !$0.1.isEmpty }.map { name, value in
                guard let number = Double(value) else {
                    return #"{"name":"\#(name)","datatype":"BYTES","shape":[1],"data":["\#(value)"]}"#
                }
                let shifted = name == "bill_length_mm" ? number + shift : number
                return #"{"name":"\#(name)","datatype":"FP64","shape":[1],"data":[\#(shifted)]}"#
            }
            let id = "\(idPrefix)\(index)"
            return (id, Data(#"{"id":"\#(id)","inputs":[\#(inputs.joined(separator: ","))]}"#.utf8), values[0])
        }
    }
}
