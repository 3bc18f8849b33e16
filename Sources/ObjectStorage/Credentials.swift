public import Foundation

/// Where credentials and the region come from: the standard places only, in the order the AWS tools use.
/// 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`);
/// 2. the profile `AWS_PROFILE` (else `default`) of `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`), then of
///    `~/.aws/config` (`AWS_CONFIG_FILE`, section `[profile NAME]`).
/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the config file.
public struct CredentialChain: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) { self.environment = environment }

    /// The profile asked for.
    public var profile: String { environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default" }

    private var home: String { environment["HOME"] ?? NSHomeDirectory() }
    private var credentialsFile: String { environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials" }
    private var configFile: String { environment["AWS_CONFIG_FILE"] ?? "\(home)/.aws/config" }

    /// The credentials, or nil when none of the standard places has any.
    public func credentials() -> AWSCredentials? {
        if let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !id.isEmpty, !secret.isEmpty {
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        }
        for (file, section) in [(credentialsFile, profile), (configFile, profile == "default" ? "default" : "profile \(profile)")] {
            let values = Self.section(section, of: file)
            if let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
                return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"])
            }
        }
        return nil
    }

    /// The region when the environment or the profile names one.
    public func region() -> String? {
        if let region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"], !region.isEmpty { return region }
        return Self.section(profile == "default" ? "default" : "profile \(profile)", of: configFile)["region"]
    }

    /// Where a user can put credentials, for messages.
    public var places: String {
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the profile '\(profile)' in \(credentialsFile) or \(configFile)"
    }

    /// The `key = value` lines of `[name]` in an INI file (`#` and `;` start comments).
    static func section(_ name: String, of path: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var inside = false
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                inside = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces) == name
                continue
            }
            guard inside, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            values[key] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }
}
