import Foundation
public import GitStore
public import Manifests
public import Registry

/// What a promotion or rollback committed.
public struct PromotionResult: Sendable, Codable {
    public var commit: String
    public var branch: String
    public var model: String
    public var environment: String
    public var version: String
    public var source: String
    /// The environment the version comes from (the upstream; the environment itself for a rollback).
    public var from: String
    public var evidence: String
    public var forced: Bool
    /// The environment already pinned this version from this source: nothing was committed (`commit` is the tip).
    public var alreadyPinned: Bool
    /// The environment asks for approval: the commit waits on `branch` for `stagecraft approve`.
    public var pending: Bool = false
}

/// A pin change worked out but not committed: what a promotion or rollback commits, where.
struct PinChange {
    var model: String
    var environment: String
    var version: String
    var source: String
    var from: String
    var evidence: String
    var forced: Bool
    var message: String
    /// The branch it is committed on, starting at `start`, where the environment file is `file`.
    var branch: String
    var start: ObjectID
    var file: EnvironmentManifest
    var pending: Bool
}

/// What a promotion or rollback would commit, shown before it is: the environment file before and after, the message
/// with its trailers, and the branch.
public struct PinPreview: Sendable, Codable {
    public var model: String
    public var environment: String
    public var version: String
    public var source: String
    public var from: String
    /// The environment file's path in the repository.
    public var file: String
    public var branch: String
    public var message: String
    public var before: String
    public var after: String
    public var forced: Bool
    /// The commit would wait for approval on `branch`.
    public var pending: Bool
}

/// Promotions and rollbacks: commits that change only the `version` and `source` scalars of one model in one
/// environment file (every other byte, comment and key order stays), with trailers carrying the evidence.
public struct Promotion {
    public let workspace: Workspace
    public let state: any StateStore

    public init(workspace: Workspace, state: any StateStore) {
        self.workspace = workspace
        self.state = state
    }

    /// Promotes `version` (default: what the upstream serves, verified) of `model` into `environment`.
    /// - Parameters:
    ///   - force: promote even when the upstream has no passed verification of the version (recorded in a trailer).
    ///   - branch: commit on this branch (created from the project branch) instead, for a pull request.
    ///   - author: who promotes.
    public func promote(
        model: String, to environment: String, version requested: String?, force: Bool, branch: String?,
        author: Signature
    ) throws -> PromotionResult {
        try Self.retryingWhenMoved {
            try promoteOnce(model: model, to: environment, version: requested, force: force, branch: branch, author: author)
        }
    }

    private func promoteOnce(
        model: String, to environment: String, version requested: String?, force: Bool, branch: String?,
        author: Signature
    ) throws -> PromotionResult {
        try apply(promotionChange(model: model, to: environment, version: requested, force: force, branch: branch), author: author)
    }

    /// What promoting `version` (default: what the upstream serves) of `model` into `environment` would commit,
    /// without committing it: the console's confirmation shows it, and `promote` commits exactly it.
    public func previewPromotion(model: String, to environment: String, version: String?, force: Bool) throws -> PinPreview {
        try preview(promotionChange(model: model, to: environment, version: version, force: force, branch: nil))
    }

    private func promotionChange(
        model: String, to environment: String, version requested: String?, force: Bool, branch: String?
    ) throws -> PinChange {
        let base = workspace.settings.branch
        let tip = try tip(of: branch ?? base, fallback: base)
        let target = try workspace.environment(environment, at: tip)
        guard let upstream = target.upstream else {
            throw ReconcileError(
                .refused,
                "'\(environment)' has no upstream to promote from; versions reach it by its own reconcile "
                    + "(track) or by editing \(target.file)")
        }
        let records = try state.records(environment: upstream, model: model)
        let served = try state.served(environment: upstream)[model]
        let version: String
        if let requested {
            guard let full = workspace.artifacts.resolve(requested) ?? records.last(where: { $0.version.hasPrefix(requested) })?.version
            else {
                throw ReconcileError(
                    .refused,
                    "no version '\(requested)' of '\(model)' is known here (not in the artifact store nor in "
                        + "\(upstream)'s records)")
            }
            version = full
        } else {
            guard let served else {
                throw ReconcileError(
                    .refused,
                    "'\(upstream)' serves no version of '\(model)' yet; reconcile it first (stagecraft "
                        + "reconcile --env \(upstream)) or name one with --version")
            }
            version = served.version
        }
        let passed = records.last { $0.version == version && $0.outcome == .succeeded }
        var forcedReason: String?
        if passed == nil {
            let failed = records.last { $0.version == version && $0.outcome == .failed }
            let why =
                failed.map {
                    "its verification in '\(upstream)' failed "
                        + "(\($0.reason ?? "gates"))"
                } ?? "it has not passed verification in '\(upstream)'"
            guard force else {
                throw ReconcileError(
                    .refused,
                    "will not promote \(VersionDigest.short(version)) of '\(model)' to '\(environment)': "
                        + "\(why); --force promotes it anyway and records that")
            }
            forcedReason = why
        }
        let source = passed?.source ?? (try? workspace.artifacts.buildInfo(version).source) ?? served?.source
        guard let source else {
            throw ReconcileError(
                .refused,
                "the source commit of \(VersionDigest.short(version)) is unknown; build "
                    + "it first")
        }
        let evidence = passed.map { Self.evidence($0) } ?? "none"
        var trailers = [
            Trailer(key: "Stagecraft-Model", value: model), Trailer(key: "Stagecraft-Version", value: version),
            Trailer(key: "Stagecraft-Source", value: source), Trailer(key: "Stagecraft-From", value: upstream),
            Trailer(key: "Stagecraft-To", value: environment), Trailer(key: "Stagecraft-Evidence", value: evidence),
        ]
        if let forcedReason { trailers.append(Trailer(key: "Stagecraft-Forced", value: forcedReason)) }
        let message = Trailers.append(trailers, to: "Promote \(model) \(VersionDigest.short(version)) from \(upstream) to \(environment)")
        let (destination, start, file) = try destination(
            branch: branch, base: base, tip: tip, target: target, model: model, version: version, source: source)
        return PinChange(
            model: model, environment: environment, version: version, source: source, from: upstream, evidence: evidence,
            forced: forcedReason != nil, message: message, branch: destination, start: start, file: file,
            pending: destination != (branch ?? base))
    }

    /// Pins, in `environment`, the last version of `model` that passed there other than the pinned one: the one
    /// before it, or, after a promotion whose gates failed, the one still serving.
    /// With `to`, pins that version instead (a full digest), which must have passed there.
    public func rollback(model: String, environment: String, to: String? = nil, branch: String?, author: Signature) throws
        -> PromotionResult
    {
        try Self.retryingWhenMoved { try rollbackOnce(model: model, environment: environment, to: to, branch: branch, author: author) }
    }

    private func rollbackOnce(model: String, environment: String, to wanted: String?, branch: String?, author: Signature) throws
        -> PromotionResult
    {
        try apply(rollbackChange(model: model, environment: environment, to: wanted, branch: branch), author: author)
    }

    /// What rolling `model` back in `environment` would commit, without committing it.
    public func previewRollback(model: String, environment: String, to wanted: String? = nil) throws -> PinPreview {
        try preview(rollbackChange(model: model, environment: environment, to: wanted, branch: nil))
    }

    private func rollbackChange(model: String, environment: String, to wanted: String?, branch: String?) throws -> PinChange {
        let base = workspace.settings.branch
        let tip = try tip(of: branch ?? base, fallback: base)
        let target = try workspace.environment(environment, at: tip)
        // The pin is what is taken out: normally the serving version; after a failed promotion, the one that failed.
        let pinned = target.deployment(model)?.version
        let served = try state.served(environment: environment)[model]?.version
        guard let current = pinned.map({ workspace.digest($0) ?? $0 }) ?? served else {
            throw ReconcileError(.refused, "'\(environment)' pins no version of '\(model)'; there is nothing to roll back")
        }
        let passed = try state.records(environment: environment, model: model).filter { $0.outcome == .succeeded }
        if let wanted, passed.last(where: { $0.version == wanted }) == nil {
            throw ReconcileError(
                .refused,
                "\(VersionDigest.short(wanted)) of '\(model)' has never passed in '\(environment)'; rollback --to takes a version that "
                    + "did (see stagecraft history --env \(environment) --model \(model)), or promote it")
        }
        let candidates = passed.filter { wanted == nil || $0.version == wanted }
        guard let previous = candidates.last(where: { !$0.version.hasPrefix(current) && !current.hasPrefix($0.version) }) else {
            throw ReconcileError(
                .refused,
                "no version of '\(model)' other than \(VersionDigest.short(current)) has passed in "
                    + "'\(environment)'; there is nothing to roll back to")
        }
        guard let source = previous.source else {
            throw ReconcileError(
                .refused,
                "the source commit of "
                    + "\(VersionDigest.short(previous.version)) is unknown")
        }
        let evidence = Self.evidence(previous)
        let trailers = [
            Trailer(key: "Stagecraft-Model", value: model), Trailer(key: "Stagecraft-Version", value: previous.version),
            Trailer(key: "Stagecraft-Source", value: source), Trailer(key: "Stagecraft-From", value: environment),
            Trailer(key: "Stagecraft-To", value: environment), Trailer(key: "Stagecraft-Evidence", value: evidence),
            Trailer(key: "Stagecraft-Rollback-Of", value: current),
        ]
        let message = Trailers.append(trailers, to: "Roll back \(model) in \(environment) to \(VersionDigest.short(previous.version))")
        let (destination, start, file) = try destination(
            branch: branch, base: base, tip: tip, target: target, model: model, version: previous.version, source: source)
        return PinChange(
            model: model, environment: environment, version: previous.version, source: source, from: environment,
            evidence: evidence, forced: false, message: message, branch: destination, start: start, file: file,
            pending: destination != (branch ?? base))
    }

    /// Commits `change` (nothing when the file already pins its version and source).
    private func apply(_ change: PinChange, author: Signature) throws -> PromotionResult {
        let commit = try commitPin(
            model: change.model, environment: change.file, version: change.version, source: change.source, at: change.start,
            branch: change.branch, message: change.message, author: author)
        return PromotionResult(
            commit: (commit ?? change.start).hex, branch: change.branch, model: change.model, environment: change.environment,
            version: change.version, source: change.source, from: change.from, evidence: change.evidence, forced: change.forced,
            alreadyPinned: commit == nil, pending: change.pending)
    }

    /// The file `change` edits, before and after, with the commit message: what ``apply(_:author:)`` would commit.
    private func preview(_ change: PinChange) throws -> PinPreview {
        let edit = try Self.pinEdit(
            git: workspace.repository, model: change.model, environment: change.file.name, version: change.version,
            source: change.source, at: change.start)
        return PinPreview(
            model: change.model, environment: change.environment, version: change.version, source: change.source, from: change.from,
            file: edit.path, branch: change.branch, message: change.message, before: edit.before, after: edit.after ?? edit.before,
            forced: change.forced, pending: change.pending)
    }

    /// Commits the new pin of `model` in `environment`'s file as read at `tip`, onto `tip` only (a branch that moved
    /// meanwhile is a ``GitError/Code/conflict``); nil, and no commit, when the file already pins that version and source.
    func commitPin(
        model: String, environment: EnvironmentManifest, version: String, source: String, at tip: ObjectID, branch: String,
        message: String, author: Signature
    ) throws -> ObjectID? {
        if let deployment = environment.deployment(model), Self.pins(deployment, version: version, source: source) { return nil }
        // A new branch (for a pull request) starts at the tip that was read.
        if try workspace.repository.branchTip(branch) == nil { try workspace.repository.createBranch(branch, at: tip) }
        return try Self.commitPin(
            git: workspace.repository, model: model, environment: environment.name, version: version, source: source, at: tip,
            branch: branch, message: message, author: author)
    }

    /// Commits the new pin of `model` in the file of `environment` as read at `tip` onto `branch` (which must point at
    /// `tip`); nil, and no commit, when the file already pins that version and source.
    static func commitPin(
        git: any GitSource, model: String, environment name: String, version: String, source: String, at tip: ObjectID,
        branch: String, message: String, author: Signature
    ) throws -> ObjectID? {
        let edit = try pinEdit(git: git, model: model, environment: name, version: version, source: source, at: tip)
        guard let edited = edit.after else { return nil }
        return try git.commitChanges(
            [.write(path: edit.path, contents: Data(edited.utf8))], onBranch: branch, message: message, author: author, parent: tip)
    }

    /// The environment file of `name` as read at `tip`, and as it is with `model` pinned to `version` from `source`;
    /// `after` is nil when it already pins them.
    static func pinEdit(git: any GitSource, model: String, environment name: String, version: String, source: String, at tip: ObjectID)
        throws -> (path: String, before: String, after: String?)
    {
        let path = Workspace.environmentFile(name)
        guard let data = try git.fileIfPresent(at: path, in: tip) else {
            throw ReconcileError(.unknownEnvironment, "no environment '\(name)' at \(tip.short) (expected \(path))")
        }
        let text = String(decoding: data, as: UTF8.self)
        let (decoded, diagnostics) = EnvironmentManifest.decode(text, file: path)
        guard let environment = decoded, diagnostics.isEmpty else { throw InvalidProject(diagnostics) }
        guard let deployment = environment.deployment(model) else {
            throw ReconcileError(.refused, "'\(model)' has no entry in \(environment.file); add one (with version: ~ and source: ~) first")
        }
        if Self.pins(deployment, version: version, source: source) { return (path, text, nil) }
        return (path, text, try pin(text, deployment: deployment, version: VersionDigest.short(version), source: String(source.prefix(12))))
    }

    /// True when `deployment` already pins `version` built from `source`.
    static func pins(_ deployment: ModelDeployment, version: String, source: String) -> Bool {
        guard let pinned = deployment.version, version.hasPrefix(pinned), let pinnedSource = deployment.source else { return false }
        return source.hasPrefix(pinnedSource) || pinnedSource.hasPrefix(source)
    }

    /// Runs `body` again (up to five times in all) when the branch moved under it: another promotion committed
    /// first, so the file is read again at the new tip and the same change applied there.
    static func retryingWhenMoved<T>(_ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch let error as GitError where error.code == .conflict && attempt < 5 {
                attempt += 1
            }
        }
    }

    /// Where a pin change is committed: `branch` when given; for an environment that asks for approval, a branch of
    /// its own waiting for `approve` (started at the project branch's tip); else the project branch. With the tip to
    /// commit onto and the environment file there.
    private func destination(
        branch: String?, base: String, tip: ObjectID, target: EnvironmentManifest, model: String, version: String, source: String
    ) throws -> (branch: String, tip: ObjectID, file: EnvironmentManifest) {
        guard branch == nil, target.requiredApproval != nil else { return (branch ?? base, tip, target) }
        if let deployment = target.deployment(model), Self.pins(deployment, version: version, source: source) {
            return (base, tip, target)  // already pinned: nothing to approve
        }
        let waiting = Approvals.branch(environment: target.name, model: model, version: version)
        let start = try self.tip(of: waiting, fallback: base)
        return (waiting, start, start == tip ? target : try workspace.environment(target.name, at: start))
    }

    private func tip(of branch: String, fallback: String) throws -> ObjectID {
        if let tip = try workspace.repository.branchTip(branch) { return tip }
        guard let tip = try workspace.repository.branchTip(fallback) else {
            throw ReconcileError(
                .invalid,
                "no branch '\(fallback)' in \(workspace.repository.gitDirectory) (stagecraft.yaml's "
                    + "spec.branch)")
        }
        return tip
    }

    /// The gate values of a passed verification and when they were measured, for a trailer.
    static func evidence(_ record: DeploymentRecord) -> String {
        let values = record.gates.map { gate in "\(gate.gate) (\(gate.valueText))" }.joined(separator: ", ")
        return "\(record.environment) passed \(values) at \(Timestamp.string(record.finishedAt ?? record.startedAt)) (record \(record.id))"
    }

    /// `text` with the `version` and `source` scalars of `deployment` replaced, every other byte unchanged.
    public static func pin(_ text: String, deployment: ModelDeployment, version: String, source: String) throws -> String {
        guard let versionAt = deployment.versionLocation, let sourceAt = deployment.sourceLocation else {
            throw ReconcileError(
                .refused,
                "'\(deployment.model)' in \(deployment.location.file) needs both 'version:' and 'source:' "
                    + "keys (they may be ~) for a promotion to set")
        }
        // Replace the later scalar first so the earlier one's position still holds.
        var edited = text
        for (location, value) in [(versionAt, version), (sourceAt, source)].sorted(by: {
            ($0.0.line, $0.0.column) > ($1.0.line, $1.0.column)
        }) {
            edited = try ScalarEdit.replace(in: edited, at: location, with: value)
        }
        return edited
    }
}

/// Replaces one YAML scalar, found by the line and column its node starts at, keeping every other byte.
enum ScalarEdit {
    static func replace(in text: String, at location: SourceLocation, with value: String) throws -> String {
        var scalars = Array(text.unicodeScalars)
        var line = 1
        var column = 1
        var index = 0
        while index < scalars.count && (line, column) < (location.line, location.column) {
            if scalars[index] == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
            index += 1
        }
        guard line == location.line, column == location.column, index < scalars.count else {
            throw ReconcileError(.refused, "\(location): cannot find the value to change")
        }
        var end = index
        switch scalars[index] {
        case "\"", "'":
            let quote = scalars[index]
            end += 1
            while end < scalars.count {
                if scalars[end] == "\\" && quote == "\"" {
                    end += 2
                    continue
                }
                if scalars[end] == quote {
                    if quote == "'" && end + 1 < scalars.count && scalars[end + 1] == "'" {
                        end += 2
                        continue
                    }
                    end += 1
                    break
                }
                end += 1
            }
        default:
            while end < scalars.count, !["\n", "\r", ",", "}", "]"].contains(scalars[end]),
                !(scalars[end] == "#" && end > index && scalars[end - 1] == " ")
            {
                end += 1
            }
            while end > index && (scalars[end - 1] == " " || scalars[end - 1] == "\t") { end -= 1 }
        }
        scalars.replaceSubrange(index..<end, with: Array(value.unicodeScalars))
        var result = String.UnicodeScalarView()
        result.append(contentsOf: scalars)
        return String(result)
    }
}
