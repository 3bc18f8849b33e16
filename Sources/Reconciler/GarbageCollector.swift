public import Foundation
import GitStore
import Manifests
import Registry

/// `stagecraft gc`: which built versions nothing needs any more, and their deletion from the local folder (or cache)
/// and from the remote store.
///
/// A version is kept when an environment file pins it (version, traffic split or shadow) at any branch head or at
/// any commit within the window, when it was built within the window, when the state store records it as serving, or
/// when a running server has it loaded.
public struct GarbageCollector: Sendable {
    /// A version that goes (or would go).
    public struct Victim: Sendable, Codable, Equatable {
        public var digest: String
        public var model: String?
        public var builtAt: Date?
        /// Bytes of its files, here and in the remote store.
        public var bytes: Int
        /// Where it is: `local`, and the remote's location.
        public var places: [String]
    }

    /// What a collection did.
    public struct Outcome: Sendable, Codable, Equatable {
        public var deleted: [Victim]
        public var kept: Int
        public var freedBytes: Int
        public var dryRun: Bool
    }

    public let workspace: Workspace
    /// How far back commits and builds keep versions.
    public let window: TimeInterval

    public init(workspace: Workspace, window: TimeInterval) {
        self.workspace = workspace
        self.window = window
    }

    /// The version pins (12 or more hex digits) of every environment file at every branch head, and at every commit
    /// within the window (the files in effect when it began included).
    public func pinnedVersions(now: Date = Date()) throws -> Set<String> {
        let cutoff = now.addingTimeInterval(-window)
        let repository = workspace.repository
        var commits: Set<ObjectID> = []
        for tip in try repository.branchTips().values {
            commits.insert(tip)
            for change in try repository.history(of: Project.environmentsFolder, from: tip) {
                commits.insert(change)
                // The first change older than the window was still in effect within it; older ones were not.
                if try repository.commit(change).committer.date < cutoff { break }
            }
        }
        var pins: Set<String> = []
        for commit in commits {
            for name in (try? workspace.environmentNames(at: commit)) ?? [] {
                guard let environment = try? workspace.environment(name, at: commit) else { continue }
                for deployment in environment.models { pins.formUnion(Planner.pins(deployment).map(\.version)) }
            }
        }
        return pins
    }

    /// Collects: deletes (unless `dryRun`) every stored version nothing keeps; `inUse` are versions in use elsewhere
    /// (loaded by a running server, recorded as serving).
    public func collect(inUse: Set<String>, dryRun: Bool, now: Date = Date()) throws -> Outcome {
        let store = workspace.artifacts
        let pins = try pinnedVersions(now: now)
        let cutoff = now.addingTimeInterval(-window)
        var sizes: [String: (bytes: Int, places: [String])] = [:]
        for digest in store.localDigests() {
            sizes[digest, default: (0, [])].bytes += store.localBytes(digest)
            sizes[digest, default: (0, [])].places.append("local")
        }
        if let remote = store.remote {
            for (digest, bytes) in try remote.sizes() {
                sizes[digest, default: (0, [])].bytes += bytes
                sizes[digest, default: (0, [])].places.append(remote.location)
            }
        }
        var victims: [Victim] = []
        for (digest, found) in sizes.sorted(by: { $0.key < $1.key }) {
            if inUse.contains(digest) || pins.contains(where: { digest.hasPrefix($0) }) { continue }
            // (A version only in the remote is fetched to read its build.json.)
            let built = try? store.buildInfo(digest)
            if let date = built?.createdAt, date >= cutoff { continue }
            victims.append(Victim(digest: digest, model: built?.model, builtAt: built?.createdAt, bytes: found.bytes, places: found.places))
        }
        if !dryRun { try store.delete(victims.map(\.digest)) }
        return Outcome(deleted: victims, kept: sizes.count - victims.count, freedBytes: victims.reduce(0) { $0 + $1.bytes }, dryRun: dryRun)
    }
}
