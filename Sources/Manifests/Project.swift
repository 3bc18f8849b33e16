public import Foundation

/// Where a project's files are read from: git objects at a commit, in practice.
public protocol ProjectSource {
    /// Names the revision the files are read at, for messages, such as `commit 3f2a9c1e5b7d`.
    var revision: String { get }
    /// The bytes of a file, or nil when there is none at this path.
    func file(_ path: String) throws -> Data?
    /// The names of the files directly in a folder, or nil when there is no such folder.
    func fileNames(in directory: String) throws -> [String]?
    /// Whether a file is at `path`, without reading it.
    func exists(_ path: String) throws -> Bool
    /// Whether `path` is a symbolic link (whose bytes are the link's text, not a file's).
    func isSymbolicLink(_ path: String) throws -> Bool
    /// The folder of a work tree beside the revision (where a file may be that is not committed), if there is one.
    var workTree: String? { get }
}

extension ProjectSource {
    public func exists(_ path: String) throws -> Bool { try file(path) != nil }
    public func isSymbolicLink(_ path: String) throws -> Bool { false }
    public var workTree: String? { nil }
}

/// A whole GitOps repository as of one revision: settings, model manifests and environments, checked together.
public struct Project: Sendable {
    public var settings: ProjectSettings
    /// Model manifests by name.
    public var models: [String: ModelManifest]
    /// Environments by name.
    public var environments: [String: EnvironmentManifest]
    /// Environment names, each after its upstream (dev, qa, prod), then by name.
    public var environmentOrder: [String]

    public static let manifestsFolder = "manifests"
    public static let environmentsFolder = "environments"

    /// Reads and checks every file of the project at `source`.
    /// - Returns: the project and every problem found (the project is only trustworthy when there are none).
    /// - Throws: when the files cannot be read at all (a git error), not for anything wrong inside them.
    public static func check(_ source: some ProjectSource) throws -> (Project, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        var settings = ProjectSettings()
        if let data = try source.file(ProjectSettings.file) {
            let (decoded, problems) = ProjectSettings.decode(String(decoding: data, as: UTF8.self))
            diagnostics += problems
            if let decoded { settings = decoded }
        }
        let manifestFiles = try yamlFiles(in: manifestsFolder, source)
        let environmentFiles = try yamlFiles(in: environmentsFolder, source)
        if manifestFiles == nil && environmentFiles == nil {
            diagnostics.append(
                Diagnostic(
                    SourceLocation(file: ".", line: 1, column: 1),
                    "no manifests/ or environments/ folder at \(source.revision): not a Stagecraft repository (run 'stagecraft init')"))
        }

        var models: [String: ModelManifest] = [:]
        var modelFiles: [String: String] = [:]
        for path in manifestFiles ?? [] {
            guard let data = try source.file(path) else { continue }
            let (manifest, problems) = ModelManifest.decode(String(decoding: data, as: UTF8.self), file: path)
            diagnostics += problems
            if let manifest { models[manifest.name] = manifest }
            modelFiles[stem(path)] = path
        }
        var environments: [String: EnvironmentManifest] = [:]
        for path in environmentFiles ?? [] {
            guard let data = try source.file(path) else { continue }
            let (environment, problems) = EnvironmentManifest.decode(String(decoding: data, as: UTF8.self), file: path)
            diagnostics += problems
            if let environment { environments[environment.name] = environment }
        }

        for manifest in models.values.sorted(by: { $0.name < $1.name }) {
            diagnostics += try checkData(manifest, source)
        }
        let environmentNames = Set((environmentFiles ?? []).map(stem))
        diagnostics += checkEnvironments(environments, names: environmentNames, models: models, modelFiles: modelFiles)
        let project = Project(settings: settings, models: models, environments: environments, environmentOrder: chainOrder(environments))
        return (project, diagnostics.sorted())
    }

    /// Reads the project at `source` and throws ``InvalidProject`` listing every problem, if there are any.
    public static func load(_ source: some ProjectSource) throws -> Project {
        let (project, diagnostics) = try check(source)
        guard diagnostics.isEmpty else { throw InvalidProject(diagnostics) }
        return project
    }

    private static func yamlFiles(in folder: String, _ source: some ProjectSource) throws -> [String]? {
        try source.fileNames(in: folder).map { names in
            names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "\(folder)/\($0)" }
        }
    }

    private static func stem(_ path: String) -> String {
        String(path.split(separator: "/").last!.split(separator: ".").first ?? "")
    }

    private static func checkData(_ manifest: ModelManifest, _ source: some ProjectSource) throws -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for (key, path) in [("train", manifest.data.train), ("test", manifest.data.test)] {
            guard let location = manifest.dataLocations[key] else { continue }
            if DataSpec.isObjectStore(path) { continue }  // checked where the S3 client is (validate)
            // A file DVC tracks is committed as its pointer (`path.dvc`, or the `.dvc` of a folder above it).
            if try !source.exists(path), try DVC.pointer(for: path, exists: source.exists) == nil {
                diagnostics.append(
                    Diagnostic(
                        location,
                        "data file '\(path)' does not exist at \(source.revision) (nor a DVC pointer "
                            + "'\(path).dvc')" + (try missingFileHint(path, source))))
            } else if try source.isSymbolicLink(path) {
                diagnostics.append(
                    Diagnostic(
                        location,
                        "data file '\(path)' is a symbolic link at \(source.revision): commit the file "
                            + "itself (links are not followed)"))
            }
        }
        if let trainer = manifest.trainer.command {
            let paths =
                trainer.code.map { ("code:\($0)", $0, "code path") }
                + (trainer.environment.map { [("environment", $0, "environment file")] } ?? [])
            for (key, path, what) in paths {
                guard let location = trainer.locations[key] else { continue }
                if try !source.exists(path), try source.fileNames(in: path) == nil {
                    let hint = try missingFileHint(path, source)
                    diagnostics.append(Diagnostic(location, "\(what) '\(path)' does not exist at \(source.revision)" + hint))
                }
            }
        }
        return diagnostics
    }

    /// For a data file not at the revision: the nearest committed path, and whether the work tree has it.
    private static func missingFileHint(_ path: String, _ source: some ProjectSource) throws -> String {
        if let workTree = source.workTree, FileManager.default.fileExists(atPath: workTree + "/" + path) {
            return "; the work tree has it: is it committed? (git add \(path) && git commit)"
        }
        var hint = ""
        let parts = path.split(separator: "/").map(String.init)
        let folder = parts.dropLast().joined(separator: "/")
        if let names = try source.fileNames(in: folder) {
            let paths = names.map { folder.isEmpty ? $0 : "\(folder)/\($0)" }
            hint += Spelling.didYouMean(path, among: paths)
            if hint.isEmpty, !paths.isEmpty {
                hint +=
                    "; \(folder.isEmpty ? "the repository root" : folder) has: "
                    + paths.sorted().prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            }
        }
        return hint
    }

    private static func checkEnvironments(
        _ environments: [String: EnvironmentManifest], names fileNames: Set<String>, models: [String: ModelManifest],
        modelFiles: [String: String]
    ) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        // Environments whose file exists count as existing even when the file has problems of its own.
        let names = fileNames.union(environments.keys).sorted()
        // HTTP and gRPC ports alike: no two environments on one port.
        var ports: [Int: (name: String, location: SourceLocation)] = [:]
        for environment in environments.values.sorted(by: { ($0.file) < ($1.file) }) {
            var own: [(Int, SourceLocation, String)] = [(environment.port, environment.portLocation, "port")]
            if let grpc = environment.grpcPort, let location = environment.grpcPortLocation { own.append((grpc, location, "grpcPort")) }
            for (port, location, key) in own {
                if let other = ports[port], other.name != environment.name {
                    diagnostics.append(
                        Diagnostic(
                            location,
                            "\(key == "port" ? "port" : "grpcPort") \(port) is already used by "
                                + "environment '\(other.name)' (\(other.location))"))
                } else if ports[port] == nil {
                    ports[port] = (environment.name, location)
                }
            }
            if let upstream = environment.upstream, !names.contains(upstream), let location = environment.upstreamLocation {
                let others = names.filter { $0 != environment.name }
                diagnostics.append(
                    Diagnostic(
                        location,
                        "upstream '\(upstream)' is not an environment\(Spelling.didYouMean(upstream, among: others)) (expected one of: "
                            + "\(others.joined(separator: ", ")))"))
            }
            for deployment in environment.models {
                guard let manifest = models[deployment.model] else {
                    if modelFiles[deployment.model] == nil {
                        let suggestion = Spelling.didYouMean(deployment.model, among: Array(modelFiles.keys))
                        diagnostics.append(
                            Diagnostic(
                                deployment.location,
                                "model '\(deployment.model)' has no manifest (expected manifests/\(deployment.model).yaml)\(suggestion)"))
                    }
                    continue
                }
                let applicable = Metric.applicable(to: manifest.task)
                for gate in environment.gates(for: deployment.model) where !applicable.contains(gate.metric) {
                    diagnostics.append(
                        Diagnostic(
                            gate.location,
                            "gate '\(gate.metric.rawValue)' does not apply to \(manifest.task.rawValue) model '\(manifest.name)' (expected "
                                + "one of: \(applicable.map(\.rawValue).joined(separator: ", ")))"))
                }
                if let traffic = deployment.traffic, let version = deployment.version, !traffic.contains(where: { $0.version == version }) {
                    diagnostics.append(
                        Diagnostic(
                            deployment.versionLocation ?? deployment.location,
                            "version \(version) of '\(deployment.model)' is missing from its traffic split"))
                }
            }
        }
        // Cycles in the upstream chain, reported once per cycle, at its first environment by name.
        var reported: Set<String> = []
        for name in names {
            var chain = [name]
            var current = environments[name]?.upstream
            while let next = current, environments[next] != nil, !chain.contains(next) {
                chain.append(next)
                current = environments[next]?.upstream
            }
            guard let next = current, let start = chain.firstIndex(of: next) else { continue }
            let cycle = Array(chain[start...])
            guard reported.isDisjoint(with: cycle), cycle.min() == name || !cycle.contains(name) else { continue }
            let first = cycle.min()!
            reported.formUnion(cycle)
            let rotated = Array(cycle[cycle.firstIndex(of: first)!...] + cycle[..<cycle.firstIndex(of: first)!])
            if let location = environments[first]?.upstreamLocation {
                diagnostics.append(
                    Diagnostic(
                        location,
                        "upstream chain forms a cycle: \((rotated + [first]).joined(separator: " → "))"))
            }
        }
        return diagnostics
    }

    /// Environments ordered so that each comes after its upstream; ties by name.
    static func chainOrder(_ environments: [String: EnvironmentManifest]) -> [String] {
        var order: [String] = []
        var placed: Set<String> = []
        var remaining = environments.keys.sorted()
        while !remaining.isEmpty {
            let ready = remaining.filter { name in
                guard let upstream = environments[name]?.upstream, environments[upstream] != nil else { return true }
                return placed.contains(upstream)
            }
            let next = ready.isEmpty ? remaining : ready  // a cycle: place the rest by name
            order += next
            placed.formUnion(next)
            remaining.removeAll { placed.contains($0) }
        }
        return order
    }

    /// Environments that take versions from `environment` (its direct downstreams).
    public func downstreams(of environment: String) -> [String] {
        environmentOrder.filter { environments[$0]?.upstream == environment }
    }
}
