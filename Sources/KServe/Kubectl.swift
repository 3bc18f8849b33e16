import Foundation

/// A Kubernetes cluster as the KServe target uses it: apply, list, get, delete.
public protocol KubernetesCluster: AnyObject {
    /// Which cluster, for messages (the kubeconfig context).
    var context: String { get }
    /// Applies objects server-side, as the field manager `stagecraft`.
    func apply(_ objects: [Document]) throws
    /// The objects of `kind` in `namespace` whose labels match `selector`.
    func list(_ kind: String, namespace: String, selector: String) throws -> [[String: Any]]
    /// One object; nil when there is none.
    func get(_ kind: String, name: String, namespace: String?) throws -> [String: Any]?
    /// Deletes one object (nothing when there is none).
    func delete(_ kind: String, name: String, namespace: String) throws
}

/// The cluster `KUBECONFIG` names, through `kubectl`.
public final class Kubectl: KubernetesCluster {
    /// The `kubectl` executable (a name looked up on `PATH`, or a path).
    public let executable: String
    /// The longest a call may take, in seconds.
    public var timeout: Double = 60

    public init(executable: String = "kubectl") { self.executable = executable }

    public var context: String {
        let name = (try? run(["config", "current-context"]))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.map { $0.isEmpty ? "no context" : "context \($0)" } ?? "no context"
    }

    /// Whether the cluster answers (`kubectl version` reaches its API server).
    public func isReachable() -> Bool { (try? run(["get", "--raw", "/readyz"], timeout: 10)) != nil }

    public func apply(_ objects: [Document]) throws {
        _ = try run(
            ["apply", "--server-side", "--field-manager=stagecraft", "--force-conflicts", "-f", "-"],
            input: Data(KServeObjects.list(objects).json.utf8))
    }

    public func list(_ kind: String, namespace: String, selector: String) throws -> [[String: Any]] {
        let text = try run(["get", kind, "--namespace", namespace, "--selector", selector, "--output", "json"])
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        return object?["items"] as? [[String: Any]] ?? []
    }

    public func get(_ kind: String, name: String, namespace: String?) throws -> [String: Any]? {
        let scope = namespace.map { ["--namespace", $0] } ?? []
        let text = try run(["get", kind, name, "--ignore-not-found", "--output", "json"] + scope)
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    public func delete(_ kind: String, name: String, namespace: String) throws {
        _ = try run(["delete", kind, name, "--namespace", namespace, "--ignore-not-found", "--wait=false"])
    }

    /// Runs `kubectl arguments`, feeding `input`; its standard output, or a ``KServeError`` with its standard error.
    func run(_ arguments: [String], input: Data? = nil, timeout: Double? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : "/usr/bin/env")
        process.arguments = (executable.contains("/") ? [] : [executable]) + arguments
        let output = Pipe()
        let errors = Pipe()
        let feed = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = feed
        do { try process.run() } catch {
            throw KServeError(.cluster, "cannot run \(executable): is kubectl installed and on PATH?", cause: KServeError.Underlying(error))
        }
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        if let input { feed.fileHandleForWriting.write(input) }
        try? feed.fileHandleForWriting.close()
        nonisolated(unsafe) var errorText = Data()
        let reading = DispatchGroup()
        DispatchQueue.global().async(group: reading) { errorText = errors.fileHandleForReading.readDataToEndOfFile() }
        nonisolated(unsafe) var outputText = Data()
        DispatchQueue.global().async(group: reading) { outputText = output.fileHandleForReading.readDataToEndOfFile() }
        if exited.wait(timeout: .now() + (timeout ?? self.timeout)) == .timedOut {
            process.terminate()
            throw KServeError(
                .cluster, "kubectl \(arguments.prefix(2).joined(separator: " ")) did not finish within \(Int(timeout ?? self.timeout)) s")
        }
        reading.wait()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errorText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw KServeError(.cluster, "kubectl \(arguments.prefix(2).joined(separator: " ")) failed: \(message.prefix(2_000))")
        }
        return String(decoding: outputText, as: UTF8.self)
    }
}

extension KServeError {
    /// A cause that is not `Sendable` itself, kept as text.
    public struct Underlying: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ error: any Error) { description = String(describing: error) }
    }
}
