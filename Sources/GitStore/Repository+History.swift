internal import CLibGit2
import Foundation

extension Repository {
    /// The commits reachable from `start` that changed `path` (a file or a folder; empty for the whole tree),
    /// newest first — the list `git log --format=%H <start> -- <path>` prints, with the same default history
    /// simplification: a merge whose `path` equals one parent's is skipped and only that parent is followed.
    /// - Parameter limit: stop after this many commits.
    public func history(of path: String, from start: ObjectID, limit: Int? = nil) throws(GitError) -> [ObjectID] {
        try history(of: path, from: start, until: nil, limit: limit).commits
    }

    /// The same walk, not going past `stop` (a commit already seen, such as a cached tip): the commits that
    /// changed `path` after it, and whether the walk met it (false: `stop` is not an ancestor of `start`).
    public func history(of path: String, from start: ObjectID, until stop: ObjectID?, limit: Int? = nil) throws(GitError) -> (
        commits: [ObjectID], reachedStop: Bool
    ) {
        let path = try normalizedPath(path)
        return try withHandle { (repo) throws(GitError) -> ([ObjectID], Bool) in
            var walk = HistoryWalk(repo: repo, path: path, repositoryName: displayName)
            if let stop {
                if stop == start { return ([], true) }
                walk.stop = stop
            }
            let commits = try walk.run(from: start, limit: limit)
            return (commits, walk.reachedStop)
        }
    }
}

/// A date-ordered walk of commits that keeps only those that changed one path.
private struct HistoryWalk {
    struct Node {
        var time: Int64
        var parents: [ObjectID]
        var entry: git_oid?
    }

    let repo: OpaquePointer
    let path: String
    let repositoryName: String
    var nodes: [ObjectID: Node] = [:]
    var queue = DateQueue()
    var queued: Set<ObjectID> = []
    /// A commit whose ancestry is not walked.
    var stop: ObjectID?
    var reachedStop = false

    init(repo: OpaquePointer, path: String, repositoryName: String) {
        self.repo = repo
        self.path = path
        self.repositoryName = repositoryName
    }

    mutating func run(from start: ObjectID, limit: Int?) throws(GitError) -> [ObjectID] {
        var result: [ObjectID] = []
        try enqueue(start)
        while let id = queue.pop() {
            let node = try load(id)
            if node.parents.isEmpty {
                if node.entry != nil { result.append(id) }
            } else {
                var sameParent: ObjectID?
                for parent in node.parents where Self.same(try load(parent).entry, node.entry) {
                    sameParent = parent
                    break
                }
                if let sameParent {
                    try enqueue(sameParent)
                } else {
                    result.append(id)
                    for parent in node.parents { try enqueue(parent) }
                }
            }
            if let limit, result.count >= limit { break }
        }
        return result
    }

    private static func same(_ a: git_oid?, _ b: git_oid?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (var a?, var b?): return git_oid_equal(&a, &b) != 0
        default: return false
        }
    }

    private mutating func enqueue(_ id: ObjectID) throws(GitError) {
        if id == stop {
            reachedStop = true
            return
        }
        guard queued.insert(id).inserted else { return }
        queue.push(id, time: try load(id).time)
    }

    private mutating func load(_ id: ObjectID) throws(GitError) -> Node {
        if let node = nodes[id] { return node }
        let commit = try Repository.lookupCommit(id, in: repo, repositoryName: repositoryName)
        defer { git_commit_free(commit) }
        let tree = try Repository.tree(of: commit, id: id)
        defer { git_tree_free(tree) }
        let entry: git_oid? = path.isEmpty ? git_tree_id(tree).pointee : try Repository.entry(at: path, inTree: tree)?.oid
        let node = Node(
            time: Int64(git_commit_time(commit)),
            parents: (0..<git_commit_parentcount(commit)).map { git_commit_parent_id(commit, $0).pointee.objectID },
            entry: entry)
        nodes[id] = node
        return node
    }
}

/// A max-heap of commits by commit time; equal times come out in the order they went in, as in git.
private struct DateQueue {
    private var heap: [(time: Int64, order: Int, id: ObjectID)] = []
    private var counter = 0

    private func before(_ a: Int, _ b: Int) -> Bool {
        heap[a].time != heap[b].time ? heap[a].time > heap[b].time : heap[a].order < heap[b].order
    }

    mutating func push(_ id: ObjectID, time: Int64) {
        heap.append((time, counter, id))
        counter += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard before(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> ObjectID? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var best = parent
            if left < heap.count && before(left, best) { best = left }
            if right < heap.count && before(right, best) { best = right }
            if best == parent { break }
            heap.swapAt(parent, best)
            parent = best
        }
        return top.id
    }
}
