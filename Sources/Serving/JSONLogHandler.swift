import ExternalModels
import Foundation
public import Logging
import Synchronization

/// A swift-log handler that writes one JSON object per line to standard error:
/// `{"time": "...", "level": "info", "label": "...", "message": "...", ...metadata}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private static let output = Mutex<FileHandle>(FileHandle.standardError)

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var json = JSONWriter(capacity: 160)
        json.raw("{\"time\":")
        json.string(
            ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds]))
        json.raw(",\"level\":")
        json.string(event.level.rawValue)
        json.raw(",\"label\":")
        json.string(label)
        json.raw(",\"message\":")
        json.string(event.message.description)
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            json.raw(",")
            json.string(key)
            json.raw(":")
            json.string(merged[key]!.description)
        }
        json.raw("}\n")
        let data = Data(json.bytes)
        Self.output.withLock { $0.write(data) }
    }

    /// A logger for the server named `label`, at the level `LOG_LEVEL` names (default `info`).
    public static func logger(_ label: String) -> Logger {
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        return Logger(label: label) { label in JSONLogHandler(label: label, level: level) }
    }
}
