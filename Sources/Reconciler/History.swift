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
    struct CachedCommit {
        var commit: String
        var author: String
        var email: String
        var date: Date
        var summary: String
        var trailers: [Trailer]
    }

    /// The per-path cache: the tip it was made at and the commits that changed the path, newest first. Stored as
    /// text, one commit per line with tab-separated fields (read in a few milliseconds for thousands of commits).
    struct Cache {
        static let header = "stagecraft-history-cache 1"
        var tip: String
        var commits: [CachedCommit]

        func text() -> String {
            var text = "\(Self.header)\n\(tip)\n"
            for commit in commits {
                let trailers = commit.trailers.map { Self.escape($0.key) + "\u{1F}" + Self.escape($0.value) }.joined(separator: "\u{1E}")
                let milliseconds = Int64((commit.date.timeIntervalSince1970 * 1000).rounded())
                text +=
                    [
                        commit.commit, String(milliseconds), Self.escape(commit.author), Self.escape(commit.email),
                        Self.escape(commit.summary), trailers,
                    ]
                    .joined(separator: "\t") + "\n"
            }
            return text
        }

        init(tip: String, commits: [CachedCommit]) {
            self.tip = tip
            self.commits = commits
        }

        /// Reads a cache file's text; nil when it is not one (another version, or damaged).
        init?(_ text: Substring) {
            // Split on bytes: a field never holds a raw tab or newline, and bytes are not grouped into characters.
            let lines = text.utf8.split(separator: 10, omittingEmptySubsequences: false)
            guard lines.count >= 2, Substring(lines[0]) == Self.header else { return nil }
            tip = String(Substring(lines[1]))
            commits = []
            commits.reserveCapacity(lines.count)
            for line in lines.dropFirst(2) where !line.isEmpty {
                let fields = line.split(separator: 9, omittingEmptySubsequences: false).map { Substring($0) }
                guard fields.count == 6, let milliseconds = Int64(fields[1]) else { return nil }
                let trailers =
                    fields[5].isEmpty
                    ? []
                    : fields[5].split(separator: "\u{1E}", omittingEmptySubsequences: false).compactMap { pair -> Trailer? in
                        let parts = pair.split(separator: "\u{1F}", maxSplits: 1, omittingEmptySubsequences: false)
                        return parts.count == 2 ? Trailer(key: Self.unescape(parts[0]), value: Self.unescape(parts[1])) : nil
                    }
                commits.append(
                    CachedCommit(
                        commit: String(fields[0]), author: Self.unescape(fields[2]), email: Self.unescape(fields[3]),
                        date: Date(timeIntervalSince1970: Double(milliseconds) / 1000), summary: Self.unescape(fields[4]),
                        trailers: trailers))
            }
        }

        private static let escapes: [(Character, Character)] = [("\t", "t"), ("\n", "n"), ("\r", "r"), ("\u{1E}", "x"), ("\u{1F}", "y")]

        private static func escape(_ text: String) -> String {
            guard text.unicodeScalars.contains(where: { $0 == "\\" || $0.value < 32 }) else { return text }
            var result = ""
            for scalar in text.unicodeScalars {
                if scalar == "\\" {
                    result += "\\\\"
                } else if let (_, code) = escapes.first(where: { $0.0.unicodeScalars.first == scalar }) {
                    result += "\\" + String(code)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
            return result
        }

        private static func unescape(_ text: Substring) -> String {
            guard text.contains("\\") else { return String(text) }
            var result = ""
            var escaped = false
            for character in text.unicodeScalars {
                if escaped {
                    if let (original, _) = escapes.first(where: { $0.1.unicodeScalars.first == character }) {
                        result.append(original)
                    } else {
                        result.unicodeScalars.append(character)
                    }
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    result.unicodeScalars.append(character)
                }
            }
            return result
        }
    }

    /// The entries of `environments`, newest first.
    public func entries(environments: [String], model: String?, since: Date?, ref: String) throws -> [HistoryEntry] {
        let tip = try workspace.repository.resolve(ref)
        let records = Dictionary(grouping: try state.records(environment: nil, model: model)) {
            "\($0.environment) "
                + "\($0.environmentCommit)"
        }
        var entries: [(entry: HistoryEntry, order: Int)] = []
        for environment in environments {
            for commit in try commits(of: Workspace.environmentFile(environment), from: tip) {
                if let since, commit.date < since { break }
                let attached = records["\(environment) \(commit.commit)"] ?? []
                if let model, attached.isEmpty, !commit.trailers.contains(where: { $0.key == "Stagecraft-Model" && $0.value == model }) {
                    continue
                }
                let served = attached.first { $0.outcome == .succeeded }?.finishedAt
                entries.append(
                    (
                        HistoryEntry(
                            environment: environment, commit: commit.commit, author: commit.author, authorEmail: commit.email,
                            date: commit.date,
                            summary: commit.summary, trailers: commit.trailers, records: attached,
                            commitToServingSeconds: served.map { $0.timeIntervalSince(commit.date) }), entries.count
                    ))
            }
        }
        // Newest first; commits of one file keep git's order, which settles commits made in the same second.
        return entries.sorted { $0.entry.date != $1.entry.date ? $0.entry.date > $1.entry.date : $0.order < $1.order }.map(\.entry)
    }

    /// The commits that changed `path`, newest first, from the cache plus a walk of what is new.
    func commits(of path: String, from tip: ObjectID) throws -> [CachedCommit] {
        let folder = workspace.root.appendingPathComponent(".stagecraft/cache/history")
        let file = folder.appendingPathComponent(path.replacingOccurrences(of: "/", with: "_") + ".cache")
        let cached = (try? Data(contentsOf: file)).flatMap { Cache(Substring(decoding: $0, as: UTF8.self)) }
        if let cached, cached.tip == tip.hex { return cached.commits }
        let repository = workspace.repository
        let walk = try repository.history(of: path, from: tip, until: cached.flatMap { ObjectID(hex: $0.tip) })
        var known = walk.reachedStop ? cached?.commits ?? [] : []
        let seen = Set(known.map(\.commit))
        let new = try walk.commits.filter { !seen.contains($0.hex) }.map { (id) throws -> CachedCommit in
            let commit = try repository.commit(id)
            return CachedCommit(
                commit: id.hex, author: commit.author.name, email: commit.author.email, date: commit.committer.date,
                summary: commit.summary, trailers: commit.trailers)
        }
        known = new + known
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        do {
            let data = Data(Cache(tip: tip.hex, commits: known).text().utf8)
            let staging = file.appendingPathExtension("\(getpid()).tmp")
            if (try? data.write(to: staging)) != nil { rename(staging.path, file.path) }
        }
        return known
    }
}
