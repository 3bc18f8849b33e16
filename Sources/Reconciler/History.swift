public import Foundation
public import GitStore
public import Registry
#if canImport(Glibc)
import Glibc
#endif

/// One change of desired state (a commit to an environment file) and what actually happened because of it.
public struct HistoryEntry: Codable, Sendable, Hashable {
    public var environment: String
    public var commit: String
    public var author: String
    public var authorEmail: String
    public var date: Date
    public var summary: String
    /// The commit's `Stagecraft-*` trailers (and any other), in order.
    public var trailers: [Trailer]
    /// The deployment records made for this state of the environment file, oldest first.
    public var records: [DeploymentRecord]
    /// From the commit to the first version serving because of it, in seconds.
    public var commitToServingSeconds: Double?
}

/// `stagecraft history`: commits to `environments/` joined with deployment records (the state store, or the git
/// notes when the store is gone). Commit metadata is cached per environment file under `.stagecraft/cache/`, so a
/// later run walks only the commits made since.
public struct History {
    public let workspace: Workspace
    public let state: any StateStore

    public init(workspace: Workspace, state: any StateStore) {
        self.workspace = workspace
        self.state = state
    }

    /// A commit as the cache keeps it.
    struct CachedCommit: Codable {
        var commit: String
        var author: String
        var email: String
        var date: Date
        var summary: String
        var trailers: [Trailer]
    }

    struct Cache: Codable {
        var tip: String
        /// Newest first.
        var commits: [CachedCommit]
    }

    /// The entries of `environments`, newest first.
    public func entries(environments: [String], model: String?, since: Date?, ref: String) throws -> [HistoryEntry] {
        let tip = try workspace.repository.resolve(ref)
        let records = Dictionary(grouping: try state.records(environment: nil, model: model)) { "\($0.environment) \($0.environmentCommit)" }
        var entries: [(entry: HistoryEntry, order: Int)] = []
        for environment in environments {
            for commit in try commits(of: Workspace.environmentFile(environment), from: tip) {
                if let since, commit.date < since { break }
                let attached = records["\(environment) \(commit.commit)"] ?? []
                if let model, attached.isEmpty, !commit.trailers.contains(where: { $0.key == "Stagecraft-Model" && $0.value == model }) { continue }
                let served = attached.first { $0.outcome == .succeeded }?.finishedAt
                entries.append((HistoryEntry(
                    environment: environment, commit: commit.commit, author: commit.author, authorEmail: commit.email, date: commit.date,
                    summary: commit.summary, trailers: commit.trailers, records: attached,
                    commitToServingSeconds: served.map { $0.timeIntervalSince(commit.date) }), entries.count))
            }
        }
        // Newest first; commits of one file keep git's order, which settles commits made in the same second.
        return entries.sorted { $0.entry.date != $1.entry.date ? $0.entry.date > $1.entry.date : $0.order < $1.order }.map(\.entry)
    }

    /// The commits that changed `path`, newest first, from the cache plus a walk of what is new.
    func commits(of path: String, from tip: ObjectID) throws -> [CachedCommit] {
        let folder = workspace.root.appendingPathComponent(".stagecraft/cache/history")
        let file = folder.appendingPathComponent(path.replacingOccurrences(of: "/", with: "_") + ".json")
        let cached = (try? Data(contentsOf: file)).flatMap { try? Timestamp.decoder.decode(Cache.self, from: $0) }
        if let cached, cached.tip == tip.hex { return cached.commits }
        let repository = workspace.repository
        let walk = try repository.history(of: path, from: tip, until: cached.flatMap { ObjectID(hex: $0.tip) })
        var known = walk.reachedStop ? cached?.commits ?? [] : []
        let seen = Set(known.map(\.commit))
        let new = try walk.commits.filter { !seen.contains($0.hex) }.map { (id) throws -> CachedCommit in
            let commit = try repository.commit(id)
            return CachedCommit(commit: id.hex, author: commit.author.name, email: commit.author.email, date: commit.committer.date,
                                summary: commit.summary, trailers: commit.trailers)
        }
        known = new + known
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if let data = try? Timestamp.encoder.encode(Cache(tip: tip.hex, commits: known)) {
            let staging = file.appendingPathExtension("\(getpid()).tmp")
            if (try? data.write(to: staging)) != nil { rename(staging.path, file.path) }
        }
        return known
    }
}
