public import Foundation
public import GitStore
public import Manifests
import Registry

/// Four-eyes promotion: an environment with `spec.approval` gets a promotion as a commit on a branch of its own
/// (`stagecraft/promote/<env>/<model>/<short digest>`), which approvers other than the promoter approve; the last
/// approval needed commits the pin on the project branch with `Stagecraft-Promoted-By` and one
/// `Stagecraft-Approved-By` per approval. `reconcile` refuses a pin whose commit lacks them.
public enum Approvals {
    static let branchPrefix = "stagecraft/promote/"

    /// The branch a promotion waiting for approval is committed on.
    public static func branch(environment: String, model: String, version: String) -> String {
        "\(branchPrefix)\(environment)/\(model)/\(VersionDigest.short(version))"
    }

    /// `Name <email>`, as the trailers name people.
    public static func identity(_ signature: Signature) -> String { "\(signature.name) <\(signature.email)>" }

    /// The email of an identity (`Name <email>`, or an email alone), lowercased.
    public static func email(of identity: String) -> String {
        guard let open = identity.lastIndex(of: "<"), let close = identity.lastIndex(of: ">"), open < close else {
            return identity.trimmingCharacters(in: .whitespaces).lowercased()
        }
        return String(identity[identity.index(after: open)..<close]).lowercased()
    }

    /// Why `commit` (the one that set a model's entry in an environment file) lacks the approvals `policy` asks; nil
    /// when it has them. Approvals count once per approver named in `policy`, never the promoter's own.
    public static func shortfall(of commit: Commit, policy: ApprovalPolicy) -> String? {
        let promoter = email(of: commit.trailer("Stagecraft-Promoted-By") ?? commit.author.email)
        let approvers = Set(
            commit.trailers.filter { $0.key == "Stagecraft-Approved-By" }.map { email(of: $0.value) }
                .filter { policy.allows($0) && $0 != promoter })
        guard approvers.count < policy.count else { return nil }
        return "commit \(commit.id.short) has \(approvers.count) of the \(policy.count) approval(s) required (approvers: "
            + "\(policy.approvers.joined(separator: ", ")))"
    }

    /// The commit that last changed `model`'s entry (version, source, traffic, shadow) in `environment`'s file, as of
    /// `commit`; the environment file at it.
    public static func pinCommit(
        of model: String, environment: String, at commit: ObjectID, in git: any GitSource, limit: Int = 500
    ) throws -> (commit: ObjectID, manifest: EnvironmentManifest)? {
        func entry(_ manifest: EnvironmentManifest?) -> [String?] {
            guard let deployment = manifest?.deployment(model) else { return ["absent"] }
            return [
                deployment.version, deployment.source,
                deployment.traffic.map { $0.map { "\($0.version):\($0.weight)" }.joined(separator: ",") },
                deployment.shadow?.version,
            ]
        }
        let changes = try git.history(of: Workspace.environmentFile(environment), from: commit, limit: limit)
        guard let newest = changes.first else { return nil }
        let current = try EnvironmentFiles.read(environment, at: newest, in: git)
        var found = (newest, current)
        for older in changes.dropFirst() {
            let manifest = try? EnvironmentFiles.read(environment, at: older, in: git)
            guard entry(manifest) == entry(current) else { break }
            found = (older, manifest!)
        }
        return found
    }
}

/// A promotion waiting for approvals.
public struct PendingPromotion: Sendable, Codable, Equatable {
    /// The branch it waits on.
    public var branch: String
    public var environment: String
    public var model: String
    public var version: String
    public var source: String
    /// The promotion commit (on `branch`).
    public var promotion: String
    /// Who promoted it (`Name <email>`).
    public var promoter: String
    /// Who approved it so far.
    public var approvals: [String]
    /// How many approvals the environment asks.
    public var needed: Int
}

/// What `approve` did: one more approval on the branch, or the pin committed on the project branch.
public struct ApprovalResult: Sendable, Codable {
    public var pending: PendingPromotion
    public var approver: String
    /// The commit on the project branch when this approval was the last one needed; nil while more are needed.
    public var merged: String?
    /// The project branch.
    public var branch: String
}

extension Promotion {
    /// The promotions waiting for approval, optionally of one environment and model.
    public func pendingPromotions(environment: String? = nil, model: String? = nil) throws -> [PendingPromotion] {
        let repository = workspace.repository
        let base = workspace.settings.branch
        var found: [PendingPromotion] = []
        for (branch, tip) in try repository.branchTips().sorted(by: { $0.key < $1.key }) where branch.hasPrefix(Approvals.branchPrefix) {
            let parts = branch.dropFirst(Approvals.branchPrefix.count).split(separator: "/").map(String.init)
            guard parts.count == 3, environment.map({ $0 == parts[0] }) ?? true, model.map({ $0 == parts[1] }) ?? true else { continue }
            // Approvals are commits on top of the promotion commit.
            var approvals: [String] = []
            var commit = try repository.commit(tip)
            while commit.trailer("Stagecraft-Model") == nil, let approval = commit.trailer("Stagecraft-Approved-By"),
                let parent = commit.parents.first
            {
                approvals.insert(approval, at: 0)
                commit = try repository.commit(parent)
            }
            guard commit.trailer("Stagecraft-Model") == parts[1], commit.trailer("Stagecraft-To") == parts[0],
                let version = commit.trailer("Stagecraft-Version"), let source = commit.trailer("Stagecraft-Source")
            else { continue }
            let policy = try? workspace.environment(parts[0], at: try repository.resolve(base)).requiredApproval
            found.append(
                PendingPromotion(
                    branch: branch, environment: parts[0], model: parts[1], version: version, source: source,
                    promotion: commit.id.hex, promoter: Approvals.identity(commit.author), approvals: approvals,
                    needed: policy?.count ?? 1))
        }
        return found
    }

    /// The one promotion of `model` to `environment` waiting for approval (of `version`, when several wait).
    func pending(model: String, environment: String, version: String?) throws -> PendingPromotion {
        let waiting = try pendingPromotions(environment: environment, model: model).filter { pending in
            version.map { pending.version.hasPrefix($0) } ?? true
        }
        guard let first = waiting.first else {
            throw ReconcileError(
                .refused,
                "no promotion of '\(model)' to '\(environment)' waits for approval\(version.map { " (version \($0))" } ?? ""); "
                    + "promote it first: stagecraft promote \(model) --to \(environment)")
        }
        guard waiting.count == 1 else {
            throw ReconcileError(
                .refused,
                "\(waiting.count) promotions of '\(model)' to '\(environment)' wait for approval ("
                    + waiting.map { VersionDigest.short($0.version) }.joined(separator: ", ") + "); name one with --version")
        }
        return first
    }

    /// Approves a waiting promotion as `approver`; the last approval needed commits the pin on the project branch.
    public func approve(model: String, environment: String, version: String?, approver: Signature) throws -> ApprovalResult {
        let repository = workspace.repository
        let base = workspace.settings.branch
        var pending = try pending(model: model, environment: environment, version: version)
        guard let policy = try workspace.environment(environment, at: try repository.resolve(base)).requiredApproval else {
            throw ReconcileError(
                .refused,
                "'\(environment)' asks for no approval (spec.approval in \(Workspace.environmentFile(environment))); promote "
                    + "without one, or take the commit on \(pending.branch)")
        }
        let me = Approvals.identity(approver)
        let email = Approvals.email(of: me)
        guard policy.allows(email) else {
            throw ReconcileError(
                .refused,
                "\(me) is not an approver of '\(environment)' (approvers: \(policy.approvers.joined(separator: ", ")))")
        }
        guard Approvals.email(of: pending.promoter) != email else {
            throw ReconcileError(
                .refused,
                "\(me) promoted \(VersionDigest.short(pending.version)) of '\(model)' to '\(environment)'; another approver must "
                    + "approve it (approvers: \(policy.approvers.joined(separator: ", ")))")
        }
        guard !pending.approvals.contains(where: { Approvals.email(of: $0) == email }) else {
            throw ReconcileError(.refused, "\(me) has already approved \(VersionDigest.short(pending.version)) of '\(model)'")
        }
        pending.approvals.append(me)
        pending.needed = policy.count
        let counted = pending.approvals.filter { policy.allows(Approvals.email(of: $0)) }.count
        guard counted >= policy.count else {
            let message = Trailers.append(
                [Trailer(key: "Stagecraft-Approved-By", value: me)],
                to: "Approve \(model) \(VersionDigest.short(pending.version)) for \(environment)")
            let tip = try repository.resolve(pending.branch)
            _ = try repository.commitChanges([], onBranch: pending.branch, message: message, author: approver, parent: tip)
            return ApprovalResult(pending: pending, approver: me, merged: nil, branch: base)
        }
        // The last approval: the promotion's own edit, made again at the project branch's head, with its evidence.
        let promotion = try repository.commit(try repository.resolve(pending.promotion))
        let trailers =
            promotion.trailers.filter { $0.key.hasPrefix("Stagecraft-") }
            + [Trailer(key: "Stagecraft-Promoted-By", value: pending.promoter)]
            + pending.approvals.map { Trailer(key: "Stagecraft-Approved-By", value: $0) }
        let message = Trailers.append(trailers, to: promotion.summary)
        let merged = try Self.retryingWhenMoved { () throws -> ObjectID? in
            let tip = try repository.resolve(base)
            let target = try workspace.environment(environment, at: tip)
            return try commitPin(
                model: model, environment: target, version: pending.version, source: pending.source, at: tip, branch: base,
                message: message, author: approver)
        }
        guard let merged else {
            throw ReconcileError(
                .refused,
                "\(Workspace.environmentFile(environment)) on \(base) already pins \(VersionDigest.short(pending.version)) of "
                    + "'\(model)'; the branch \(pending.branch) is left as it is")
        }
        try repository.deleteBranch(pending.branch)
        return ApprovalResult(pending: pending, approver: me, merged: merged.hex, branch: base)
    }

    /// Closes a waiting promotion with `reason`: a commit on its branch saying who rejected it and why, kept under
    /// `refs/stagecraft/rejected/` once the branch is deleted.
    public func reject(model: String, environment: String, version: String?, by person: Signature, reason: String) throws
        -> PendingPromotion
    {
        let repository = workspace.repository
        let pending = try pending(model: model, environment: environment, version: version)
        let policy = try workspace.environment(environment, at: try repository.resolve(workspace.settings.branch)).requiredApproval
        let me = Approvals.identity(person)
        let email = Approvals.email(of: me)
        guard policy?.allows(email) == true || Approvals.email(of: pending.promoter) == email else {
            throw ReconcileError(
                .refused,
                "\(me) is neither an approver of '\(environment)' nor the promoter; only they can reject a promotion")
        }
        let message = Trailers.append(
            [Trailer(key: "Stagecraft-Rejected-By", value: me), Trailer(key: "Stagecraft-Reason", value: reason)],
            to: "Reject \(model) \(VersionDigest.short(pending.version)) for \(environment)")
        let tip = try repository.resolve(pending.branch)
        let closed = try repository.commitChanges([], onBranch: pending.branch, message: message, author: person, parent: tip)
        let stamp = Int(Date().timeIntervalSince1970)
        try repository.setReference(
            "refs/stagecraft/rejected/\(environment)/\(model)/\(VersionDigest.short(pending.version))-\(stamp)", to: closed)
        try repository.deleteBranch(pending.branch)
        return pending
    }
}
