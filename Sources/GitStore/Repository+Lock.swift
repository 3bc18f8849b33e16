import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Repository {
    /// Runs `body` holding the repository's write lock, which every Stagecraft process takes before it moves a branch,
    /// writes the index or writes notes: `flock` on `<git dir>/stagecraft.lock`, released by the kernel when its holder
    /// dies, so concurrent promotions and reconciles take turns instead of failing on each other's git lock files.
    ///
    /// git's own lock files (`index.lock`, `refs/heads/<branch>.lock`) stay behind when a process is killed while it
    /// holds one. The holder writes the ones it is about to create into `stagecraft.lock`; the next holder removes
    /// those that still exist and that no process has open (they were left by a Stagecraft process that died). A lock
    /// file left by anything else is refused with ``GitError/Code/locked``, naming it and the command that clears it.
    /// - Parameters:
    ///   - lockFiles: the lock files `body` creates, relative to the git directory.
    func withWriteLock<T>(creating lockFiles: [String], _ body: () throws(GitError) -> T) throws(GitError) -> T {
        let lockPath = gitDirectory + "/stagecraft.lock"
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw GitError(.other, "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw GitError(.other, "cannot lock \(lockPath): \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }
        // What the last holder was creating when it stopped: its lock files, if still there and open nowhere, are ours.
        for relative in Self.contents(of: fd).split(separator: "\n").map(String.init) where Self.isGitLockFile(relative) {
            let path = gitDirectory + "/" + relative
            if FileManager.default.fileExists(atPath: path) && Self.processes(holding: path).isEmpty { unlink(path) }
        }
        for relative in lockFiles {
            let path = gitDirectory + "/" + relative
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let holders = Self.processes(holding: path)
            if let holder = holders.first {
                throw GitError(.locked, "\(path) is held by a running process (pid \(holder)); try again when it has finished")
            }
            throw GitError(
                .locked,
                "\(path) was left behind by a git process that died (no process has it open); remove it and try again: rm '\(path)'")
        }
        Self.replaceContents(of: fd, with: lockFiles.map { $0 + "\n" }.joined())
        defer { Self.replaceContents(of: fd, with: "") }
        return try body()
    }

    /// A path under the git directory that names a git lock file (never anything else is removed).
    private static func isGitLockFile(_ relative: String) -> Bool {
        relative.hasSuffix(".lock") && !relative.hasPrefix("/") && !relative.split(separator: "/").contains("..")
            && relative != "stagecraft.lock"
    }

    private static func contents(of fd: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = pread(fd, &bytes, bytes.count, 0)
        return count > 0 ? String(decoding: bytes[0..<count], as: UTF8.self) : ""
    }

    private static func replaceContents(of fd: Int32, with text: String) {
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// The processes that have `path` open, from `/proc/<pid>/fd` (git and libgit2 keep a lock file open while they
    /// hold it).
    static func processes(holding path: String) -> [Int32] {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var holders: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry) else { continue }
            let folder = "/proc/\(entry)/fd"
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                if (try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + fd)) == target {
                    holders.append(pid)
                    break
                }
            }
        }
        return holders
    }
}
