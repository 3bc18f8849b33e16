public import Foundation
public import GitStore
public import Manifests

/// A project's files as git objects at one commit: no checkout, works on bare repositories and fetched caches.
public struct GitProjectSource: ProjectSource, Sendable {
    public let repository: any GitSource
    public let commit: ObjectID
    /// The ref as the user named it, such as `HEAD` or `main`.
    public let ref: String

    /// Resolves `ref` in `repository`.
    public init(repository: any GitSource, ref: String) throws(GitError) {
        self.repository = repository
        self.ref = ref
        self.commit = try repository.resolve(ref)
    }

    /// The files of `commit` in `git`.
    public init(git: any GitSource, commit: ObjectID) {
        self.repository = git
        self.ref = commit.hex
        self.commit = commit
    }

    public var revision: String { ref == commit.hex ? "commit \(commit.short)" : "\(ref) (\(commit.short))" }

    /// The repository's work tree, when it has one.
    public var workTree: String? { (repository as? Repository)?.workingDirectory }

    public func file(_ path: String) throws -> Data? {
        try repository.fileIfPresent(at: path, in: commit)
    }

    public func exists(_ path: String) throws -> Bool {
        try repository.fileExists(at: path, in: commit)
    }

    public func isSymbolicLink(_ path: String) throws -> Bool {
        let parts = path.split(separator: "/")
        guard let name = parts.last else { return false }
        let folder = parts.dropLast().joined(separator: "/")
        return try repository.directory(at: folder, in: commit)?.first { $0.name == name }?.kind == .symlink
    }

    public func fileNames(in directory: String) throws -> [String]? {
        try repository.directory(at: directory, in: commit)?.filter { $0.kind == .file || $0.kind == .executable }.map(\.name)
    }
}
