public import Foundation

/// The result of running a process to completion.
public struct ProcessOutput: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs real processes for tests: the `git` CLI, `curl`, the `stagecraft` binary.
public enum ProcessRunner {
    /// Runs `executable` (a path, or a name looked up on PATH) with `arguments` and waits for it.
    /// - Parameters:
    ///   - directory: the working directory.
    ///   - environment: variables added to (or replacing) this process's environment.
    ///   - input: bytes written to its standard input.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], in directory: String? = nil,
        environment: [String: String] = [:], input: Data? = nil
    ) throws -> ProcessOutput {
        let process = Process()
        if executable.contains("/") {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [executable] + arguments
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe(), stdin = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        // Read stderr on another thread so that neither pipe fills up and blocks the child.
        nonisolated(unsafe) var errorData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errorData = err.fileHandleForReading.readDataToEndOfFile() }
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return ProcessOutput(
            status: process.terminationStatus,
            stdout: String(decoding: outputData, as: UTF8.self),
            stderr: String(decoding: errorData, as: UTF8.self))
    }
}

/// A failure of a helper process that a test expected to succeed.
public struct ProcessFailure: Error, CustomStringConvertible {
    public let command: String
    public let output: ProcessOutput
    public init(command: String, output: ProcessOutput) {
        self.command = command
        self.output = output
    }
    public var description: String { "\(command) exited \(output.status): \(output.stderr)\(output.stdout)" }
}
