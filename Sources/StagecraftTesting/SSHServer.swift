import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `sshd` on 127.0.0.1 for tests of git over ssh: its own host key, one authorized ed25519 client key.
public final class SSHServer: @unchecked Sendable {
    public let directory: ScratchDirectory
    public let port: Int
    /// The client's private and public key files.
    public let clientKey: String
    public let clientPublicKey: String
    /// The host key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).
    public let hostKeyFingerprint: String
    private let pidFile: String

    /// True when this machine can run the test server: OpenSSH's `sshd` is installed and we are root (sshd needs
    /// its privilege-separation directory and logs in as the current user).
    public static var available: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") && geteuid() == 0
    }

    public init() throws {
        directory = try ScratchDirectory("sshd")
        let path = directory.path
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        for key in ["host_key", "client_key"] {
            let generated = try ProcessRunner.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", "\(path)/\(key)"])
            guard generated.status == 0 else { throw ProcessFailure(command: "ssh-keygen", output: generated) }
        }
        try FileManager.default.copyItem(atPath: "\(path)/client_key.pub", toPath: "\(path)/authorized_keys")
        clientKey = "\(path)/client_key"
        clientPublicKey = "\(path)/client_key.pub"
        let listed = try ProcessRunner.run("ssh-keygen", ["-lf", "\(path)/host_key.pub"]).stdout
        hostKeyFingerprint = String(listed.split(separator: " ")[1])
        port = try Loopback.freePort()
        try directory.write("""
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(path)/host_key
            AuthorizedKeysFile \(path)/authorized_keys
            PidFile \(path)/sshd.pid
            UsePAM no
            StrictModes no
            PermitRootLogin prohibit-password
            PasswordAuthentication no

            """, to: "sshd_config")
        // sshd daemonizes itself (its first process exits at once), so that Foundation's child-process tracking
        // never waits on it; it is stopped through its pid file.
        pidFile = "\(path)/sshd.pid"
        let started = try ProcessRunner.run("/usr/sbin/sshd", ["-f", "\(path)/sshd_config", "-E", "\(path)/sshd.log"])
        guard started.status == 0 else { throw ProcessFailure(command: "sshd", output: started) }
        try Loopback.waitForListener(port: port)
    }

    /// What sshd has logged.
    public var log: String { (try? directory.read("sshd.log")) ?? "" }

    deinit {
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            kill(pid, SIGTERM)
        }
    }
}
