internal import CLibGit2

extension Repository {
    /// Every branch's tip by name: local branches (`main`) and remote-tracking ones (`origin/main`); symbolic
    /// references (`origin/HEAD`) are left out.
    public func branchTips() throws(GitError) -> [String: ObjectID] {
        try withHandle { (repo) throws(GitError) in
            var iterator: OpaquePointer?
            try LibGit2.check("git_branch_iterator_new", "cannot list the branches of \(displayName)") {
                git_branch_iterator_new(&iterator, repo, GIT_BRANCH_ALL)
            }
            defer { git_branch_iterator_free(iterator) }
            var tips: [String: ObjectID] = [:]
            var reference: OpaquePointer?
            var type = GIT_BRANCH_LOCAL
            while git_branch_next(&reference, &type, iterator) == 0 {
                defer { git_reference_free(reference) }
                guard let name = git_reference_shorthand(reference), let target = git_reference_target(reference) else { continue }
                tips[String(cString: name)] = target.pointee.objectID
            }
            return tips
        }
    }
}

extension Repository {
    /// Deletes branch `name`; nothing when there is none.
    public func deleteBranch(_ name: String) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var reference: OpaquePointer?
            guard git_reference_lookup(&reference, repo, "refs/heads/\(name)") == 0 else { return }
            defer { git_reference_free(reference) }
            try LibGit2.check("git_reference_delete", "cannot delete branch '\(name)' in \(displayName)", ref: name) {
                git_reference_delete(reference)
            }
        }
    }

    /// Points the reference `fullName` (`refs/…`) at `commit`, creating it or moving it.
    public func setReference(_ fullName: String, to commit: ObjectID) throws(GitError) {
        try withHandle { (repo) throws(GitError) in
            var oid = commit.oid
            var reference: OpaquePointer?
            try LibGit2.check("git_reference_create", "cannot write reference '\(fullName)' in \(displayName)", ref: fullName) {
                git_reference_create(&reference, repo, fullName, &oid, 1, "stagecraft: \(fullName)")
            }
            git_reference_free(reference)
        }
    }
}
