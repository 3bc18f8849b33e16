internal import CLibGit2

/// An annotated tag: its name (without `refs/tags/`), the commit it points at, and its message.
public struct AnnotatedTag: Sendable, Hashable {
    public let name: String
    public let target: ObjectID
    public let message: String
}

extension Repository {
    /// Creates (or, with `force`, moves) the annotated tag `name` on `commit` with `message`, by `tagger`.
    public func createTag(_ name: String, on commit: ObjectID, message: String, tagger: Signature, force: Bool) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            let target = try Self.lookupCommit(commit, in: repo, repositoryName: displayName)
            defer { git_commit_free(target) }
            var oid = git_oid()
            try tagger.withGitSignature { (signature) throws(GitError) in
                try LibGit2.check("git_tag_create", "cannot create tag '\(name)' in \(displayName)", ref: name) {
                    git_tag_create(&oid, repo, name, target, signature, message, force ? 1 : 0)
                }
            }
        }
    }

    /// The annotated tags whose names start with `prefix`, with their commits and messages (lightweight tags are left out).
    public func annotatedTags(prefix: String) throws(GitError) -> [AnnotatedTag] {
        try withHandle { (repo) throws(GitError) in
            var names = git_strarray()
            try LibGit2.check("git_tag_list_match", "cannot list the tags of \(displayName)") {
                git_tag_list_match(&names, "\(prefix)*", repo)
            }
            defer { git_strarray_dispose(&names) }
            var tags: [AnnotatedTag] = []
            for index in 0..<names.count {
                guard let raw = names.strings[index] else { continue }
                let name = String(cString: raw)
                var reference: OpaquePointer?
                guard git_reference_lookup(&reference, repo, "refs/tags/\(name)") == 0 else { continue }
                defer { git_reference_free(reference) }
                var object: OpaquePointer?
                guard git_reference_peel(&object, reference, GIT_OBJECT_TAG) == 0 else { continue }  // not annotated
                defer { git_object_free(object) }
                guard let target = git_tag_target_id(object), let message = git_tag_message(object) else { continue }
                tags.append(AnnotatedTag(name: name, target: target.pointee.objectID, message: String(cString: message)))
            }
            return tags
        }
    }
}
