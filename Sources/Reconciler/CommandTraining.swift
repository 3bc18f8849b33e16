import ExternalModels
import Foundation
import GitStore
import Learning
import Manifests
import Registry

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a manifest's own training command for one version: a fresh work folder holding the source commit's `code`
/// (read from git objects, no checkout) and the data, the command run there with `STAGECRAFT_*` variables, its
/// output streamed to the progress display and kept in `train.log`, its model read from `$STAGECRAFT_OUTPUT`.
struct CommandTraining {
    let repository: Repository
    let inputs: Builder.Inputs
    let trainer: TrainerCommand
    /// The work folder, made empty by ``run(progress:)``; the caller removes it.
    let work: URL

    var output: URL { work.appendingPathComponent(".stagecraft-output") }
    var log: URL { work.appendingPathComponent(".stagecraft-train.log") }

    /// The values the command's `{name}` placeholders take, and `STAGECRAFT_PARAMS`.
    static func parameterText(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return text
        case .number(let number): return formatNumber(number)
        case .bool(let flag): return String(flag)
        default: return value.canonical
        }
    }

    /// Materialises the work folder and runs the command to its end.
    /// - Throws: ``BuildError`` `.training` with the tail of the log when it exits non-zero, runs past its timeout
    ///   (its process group is killed) or writes nothing.
    func run(progress: Training.Progress?) throws {
        let files = FileManager.default
        try? files.removeItem(at: work)
        try files.createDirectory(at: output, withIntermediateDirectories: true)
        let manifest = inputs.manifest
        for path in trainer.code { try materialise(path) }
        let data = work.appendingPathComponent(".stagecraft-data")
        try files.createDirectory(at: data, withIntermediateDirectories: true)
        let train = data.appendingPathComponent("train.csv")
        let test = data.appendingPathComponent("test.csv")
        try inputs.data[manifest.data.train]!.write(to: train)
        try inputs.data[manifest.data.test]!.write(to: test)
        let params = manifest.trainer.params
        let values = params.mapValues(Self.parameterText)
        let command = trainer.command.map { TrainerCommand.substitute($0, values) }
        let environment = [
            "STAGECRAFT_TRAIN": train.path, "STAGECRAFT_TEST": test.path, "STAGECRAFT_TARGET": manifest.data.target,
            "STAGECRAFT_TASK": manifest.task.rawValue, "STAGECRAFT_PARAMS": JSONValue.object(params).canonical,
            "STAGECRAFT_SEED": String(manifest.trainer.seed), "STAGECRAFT_OUTPUT": output.path,
            "PYTHONUNBUFFERED": "1",
        ]
        let process: ChildProcess
        do {
            process = try ChildProcess.start(command, in: work, environment: environment, log: log)
        } catch {
            throw BuildError(
                .training, "\(manifest.name): cannot start the trainer \(command.joined(separator: " "))",
                cause: error as? ExternalModelError)
        }
        let deadline = Date().addingTimeInterval(trainer.timeout)
        var reader = LogFollower(url: log)
        while process.isRunning {
            if Date() > deadline {
                process.stopNow(grace: 2)
                reader.lines().forEach { progress?(.output($0)) }
                throw BuildError(
                    .training,
                    "\(manifest.name): the trainer ran past its timeout of \(DurationText.format(trainer.timeout)) and was stopped "
                        + "(its whole process group killed); its log ends:\n\(process.tail())")
            }
            reader.lines().forEach { progress?(.output($0)) }
            usleep(50_000)
        }
        reader.lines().forEach { progress?(.output($0)) }
        process.stopNow(grace: 0)  // anything it left running in its group
        let status = process.exitStatus() ?? -1
        guard status == 0 else {
            throw BuildError(.training, "\(manifest.name): the trainer exited with status \(status); its log ends:\n\(process.tail())")
        }
        guard let written = files.enumerator(atPath: output.path)?.allObjects, !written.isEmpty else {
            throw BuildError(
                .training,
                "\(manifest.name): the trainer exited 0 but wrote nothing into $STAGECRAFT_OUTPUT; its log ends:\n\(process.tail())")
        }
    }

    /// Writes the file or folder at `path` of the source commit into the work folder, at the same relative path.
    private func materialise(_ path: String) throws {
        let commit = inputs.source.commit
        let target = work.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let entries = try repository.directory(at: path, in: commit) {
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            for entry in entries {
                switch entry.kind {
                case .directory: try materialise("\(path)/\(entry.name)")
                case .file, .executable:
                    let file = target.appendingPathComponent(entry.name)
                    try repository.file(at: "\(path)/\(entry.name)", in: commit).write(to: file)
                    if entry.kind == .executable { chmod(file.path, 0o755) }
                case .symlink, .submodule: continue  // not followed: nothing outside the commit's files is read
                }
            }
            return
        }
        try repository.file(at: path, in: commit).write(to: target)
        let parent = path.split(separator: "/").dropLast().joined(separator: "/")
        if try repository.directory(at: parent, in: commit)?.first(where: { $0.name == target.lastPathComponent })?.kind == .executable {
            chmod(target.path, 0o755)
        }
    }

    /// The git object id (blob or tree) of each code path at `commit`, and the sha256 of the environment file: what
    /// the version digest covers besides the spec and the data.
    static func codeHashes(_ trainer: TrainerCommand, repository: Repository, commit: ObjectID) throws -> [String: String] {
        var hashes: [String: String] = [:]
        for path in trainer.code {
            let parts = path.split(separator: "/")
            let parent = parts.dropLast().joined(separator: "/")
            guard let entry = try repository.directory(at: parent, in: commit)?.first(where: { $0.name == String(parts.last!) }) else {
                throw BuildError(.data, "code path '\(path)' does not exist at commit \(commit.short)")
            }
            hashes[path] = entry.id.hex
        }
        if let environment = trainer.environment {
            hashes["environment \(environment)"] = VersionDigest.sha256(try repository.file(at: environment, in: commit))
        }
        return hashes
    }
}

/// Reads the lines appended to a log file since the last call.
struct LogFollower {
    let url: URL
    private var offset: UInt64 = 0
    private var partial = ""

    init(url: URL) { self.url = url }

    mutating func lines() -> [String] {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return [] }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        guard let data = try? handle.readToEnd(), !data.isEmpty else { return [] }
        offset += UInt64(data.count)
        var text = partial + String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        text = lines.removeLast()
        partial = text
        return lines
    }
}
