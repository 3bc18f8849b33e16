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
