public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Test hosts in network namespaces (`ip netns`, from Debian's iproute2), each joined to a bridge in this namespace by
/// a veth pair: this namespace is the "stores" host at `10.77.x.1`, the others get `.2`, `.3`, … in the order named.
/// A host's link can be taken down and up (a partition). Everything is removed on ``remove()`` or release. Needs root;
/// ``unavailableReason`` says why it cannot be made here.
public final class TestNetwork: @unchecked Sendable {
    /// The hosts' addresses by name.
    public private(set) var addresses: [String: String] = [:]
    /// The stores host's address (this namespace, on the bridge).
    public let storesAddress: String
    /// The hosts' network (`10.77.x.0/24`).
    public let subnet: String
    private let tag: String
    private var namespaces: [String: String] = [:]
    private var links: [String: String] = [:]
    private let bridge: String

    /// Why test hosts cannot be made here (not root, no `ip`, namespaces refused), or nil when they can.
    public static var unavailableReason: String? {
        guard geteuid() == 0 else { return "network namespaces need root (CI runs as root)" }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip")
        else { return "iproute2's ip is missing (apt-get install iproute2)" }
        let probe = "scprobe\(UInt16.random(in: 0...UInt16.max))"
        guard let made = try? ProcessRunner.run("/usr/bin/env", ["ip", "netns", "add", probe]), made.status == 0 else {
            return "ip netns add is refused here (no CAP_SYS_ADMIN in this container?)"
        }
        _ = try? ProcessRunner.run("/usr/bin/env", ["ip", "netns", "del", probe])
        return nil
    }

    /// Makes the bridge and one namespace per name in `hosts`.
    public init(hosts: [String]) throws {
        tag = String(format: "%04x", UInt16.random(in: 0...UInt16.max))
        let octet = Int.random(in: 10...250)
        subnet = "10.77.\(octet).0/24"
        storesAddress = "10.77.\(octet).1"
        bridge = "scbr\(tag)"
        try Self.ip(["link", "add", bridge, "type", "bridge"])
        try Self.ip(["addr", "add", storesAddress + "/24", "dev", bridge])
        try Self.ip(["link", "set", bridge, "up"])
        for (index, host) in hosts.enumerated() {
            let namespace = "sc\(tag)-\(host)"
            let link = "v\(tag)\(index)"
            let address = "10.77.\(octet).\(index + 2)"
            try Self.ip(["netns", "add", namespace])
            namespaces[host] = namespace
            try Self.ip(["link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace])
            links[host] = link
            try Self.ip(["link", "set", link, "master", bridge, "up"])
            try Self.ip(["netns", "exec", namespace, "ip", "addr", "add", address + "/24", "dev", "eth0"])
            try Self.ip(["netns", "exec", namespace, "ip", "link", "set", "eth0", "up"])
            try Self.ip(["netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
            addresses[host] = address
        }
    }

    /// `command` as run inside `host`'s namespace, with the host's name as its host name (a UTS namespace of its own),
    /// as on a machine of its own. The command keeps the process id it starts with (each step execs the next).
    public func inside(_ host: String, _ command: [String]) -> (executable: String, arguments: [String]) {
        (
            "/usr/bin/env",
            ["ip", "netns", "exec", namespaces[host]!, "unshare", "--uts", "--", "/bin/sh", "-c", #"hostname "$0" && exec "$@""#, host]
                + command
        )
    }

    /// Runs `command` inside `host` and waits for it.
    @discardableResult
    public func run(_ host: String, _ command: [String], in directory: String? = nil, environment: [String: String] = [:]) throws
        -> ProcessOutput
    {
        let (executable, arguments) = inside(host, command)
        return try ProcessRunner.run(executable, arguments, in: directory, environment: environment)
    }

    /// Starts `command` inside `host` in the background.
    public func start(_ host: String, _ command: [String], in directory: String, environment: [String: String] = [:]) throws
        -> BackgroundProcess
    {
        let (executable, arguments) = inside(host, command)
        return try BackgroundProcess(executable, arguments, in: directory, environment: environment)
    }

    /// Takes `host`'s link to the bridge down (cut off) or up again.
    public func link(_ host: String, up: Bool) throws {
        try Self.ip(["link", "set", links[host]!, up ? "up" : "down"])
    }

    /// Removes the namespaces, their links and the bridge.
    public func remove() {
        for namespace in namespaces.values { _ = try? ProcessRunner.run("/usr/bin/env", ["ip", "netns", "del", namespace]) }
        namespaces = [:]
        _ = try? ProcessRunner.run("/usr/bin/env", ["ip", "link", "del", bridge])
    }

    deinit { remove() }

    private static func ip(_ arguments: [String]) throws {
        let output = try ProcessRunner.run("/usr/bin/env", ["ip"] + arguments)
        guard output.status == 0 else { throw ProcessFailure(command: "ip " + arguments.joined(separator: " "), output: output) }
    }
}
