import Foundation
import Manifests

#if canImport(CoreFoundation)
    import CoreFoundation  // declares `stat` where Foundation and Glibc both see the system header
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// The pid and log files of an environment's detached server: `.stagecraft/run/<env>.pid` and `<env>.log`.
struct RunFiles {
    let folder: URL
    let environment: String

    /// - Precondition: `environment` is a valid name (the commands check it when they parse it), so no path built here
    ///   leaves `.stagecraft/run/`.
    init(root: URL, environment: String) {
        precondition(ModelManifest.isValidName(environment), "environment name checked before use")
        self.folder = root.appendingPathComponent(".stagecraft/run")
        self.environment = environment
    }

    var pidFile: URL { folder.appendingPathComponent("\(environment).pid") }
    var logFile: URL { folder.appendingPathComponent("\(environment).log") }
    /// One JSON line per sampled infer request (`serve --access-log-percent`).
    var accessLogFile: URL { folder.appendingPathComponent("\(environment).access.log") }

    /// The pid of the server when it is running: the process that holds the pid file's lock, as the kernel names it
    /// (never a number read from the file, which a crash, a reboot or another user may have left there).
    func runningPID() -> Int32? { PIDFile(path: pidFile.path).holder() }

    /// When the pid file was last written: since when a running server runs.
    var pidFileWritten: Date? { (try? FileManager.default.attributesOfItem(atPath: pidFile.path))?[.modificationDate] as? Date }

    /// Creates the run folder (mode 0700) and opens the log for appending (mode 0600, whatever the umask).
    func openLog() throws -> FileHandle {
        try PrivateFiles.makeFolder(folder.path)
        return FileHandle(fileDescriptor: try PrivateFiles.open(logFile.path, flags: O_WRONLY | O_APPEND), closeOnDealloc: true)
    }
}

/// A server's pid file, which the server holds an exclusive `flock` on for as long as it runs. Whoever reads it asks
/// the kernel which process holds that lock: a file left behind names nobody, so `stop` can never signal a process
/// that merely reused a pid, and a file another user wrote (or aimed elsewhere) is not obeyed.
struct PIDFile {
    let path: String

    /// The process holding the lock on the file, or nil when the file is missing, not a regular file, or not locked.
    func holder() -> Int32? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil  // nobody holds it: left by a server that died
        }
        return Self.lockHolder(inode: UInt64(info.st_ino))
    }

    /// Claims the file for this process: writes its pid to a new file, locks it, and renames it into place, so the
    /// file is never seen unlocked or empty. The returned descriptor must stay open while the process serves.
    /// - Throws: ``CommandFailure`` when another running server holds the file.
    static func claim(_ path: String) throws -> Int32 {
        if let pid = PIDFile(path: path).holder(), pid != getpid() {
            throw CommandFailure(.failure, "another server (pid \(pid)) holds \(path)")
        }
        let temporary = "\(path).\(getpid())"
        unlink(temporary)
        let fd = try PrivateFiles.open(temporary, flags: O_RDWR | O_EXCL)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CommandFailure(.failure, "cannot lock \(temporary)")
        }
        let text = "\(getpid())\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        guard rename(temporary, path) == 0 else {
            close(fd)
            unlink(temporary)
            throw CommandFailure(.failure, "cannot write the pid file \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Removes the file when it is still the one `fd` locks (a newer server may have replaced it).
    static func release(_ path: String, fd: Int32) {
        var open = stat()
        var named = stat()
        if fstat(fd, &open) == 0, lstat(path, &named) == 0, open.st_ino == named.st_ino, open.st_dev == named.st_dev {
            unlink(path)
        }
        close(fd)
    }

    /// The process that holds an exclusive `flock` on the file with this inode, from `/proc/locks`.
    static func lockHolder(inode: UInt64) -> Int32? {
        guard let table = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        for line in table.split(separator: "\n") {
            // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "FLOCK", fields[3] == "WRITE",
                let pid = Int32(fields[4]), fields[5].split(separator: ":").last.flatMap({ UInt64($0) }) == inode
            else { continue }
            return pid
        }
        return nil
    }
}

/// Files only their owner may read or write (pid, lock and log files, secrets), whatever the umask.
enum PrivateFiles {
    /// Opens (creating when missing) `path` with mode 0600, refusing a symbolic link.
    static func open(_ path: String, flags: Int32) throws -> Int32 {
        let fd = Glibc.open(path, flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw CommandFailure(.failure, "cannot open \(path): \(String(cString: strerror(errno)))") }
        _ = fchmod(fd, 0o600)
        return fd
    }

    /// Creates `path` and its parents when missing; the folder itself gets mode 0700.
    static func makeFolder(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        _ = chmod(path, 0o700)
    }
}
