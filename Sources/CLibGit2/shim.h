#ifndef STAGECRAFT_CLIBGIT2_SHIM_H
#define STAGECRAFT_CLIBGIT2_SHIM_H

// Deprecated libgit2 names disappear, so only the current API can be used.
#define GIT_DEPRECATE_HARD 1
#include <git2.h>

// git_libgit2_opts is C-variadic and cannot be called from Swift: one wrapper per option used.

/// Turns strict object hash verification on (1) or off (0); off is safe for a trusted local repository.
static inline int stagecraft_git_set_strict_hash_verification(int enabled) {
    return git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, enabled);
}

/// Turns the check that the repository directory is owned by the current user on (1) or off (0).
static inline int stagecraft_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}

/// Sets the largest object of `type` that libgit2 keeps in its object cache (0: none of that type).
static inline int stagecraft_git_set_cache_object_limit(git_object_t type, size_t size) {
    return git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, type, size);
}

#endif
