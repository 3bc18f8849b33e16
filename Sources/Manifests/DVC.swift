import Foundation
import Yams

/// DVC's files in a repository: the `.dvc` pointers committed in place of data (DVC 3) and `.dvc/config`, which
/// names the remote the data was pushed to. Only what resolving a data file needs.
public enum DVC {
    /// One output of a pointer file: a file (`md5` of its bytes) or a folder (`md5` ending in `.dir`, whose listing
    /// is itself an object in the remote).
    public struct Output: Sendable, Equatable {
        public var md5: String
        public var size: Int?
        /// Relative to the pointer's folder.
        public var path: String
        public var isDirectory: Bool { md5.hasSuffix(".dir") }
    }

    /// The outputs of a `.dvc` file; nil when it is not one.
    public static func outputs(of text: String) -> [Output]? {
        guard let root = (try? Yams.load(yaml: text)) as? [String: Any], let outs = root["outs"] as? [[String: Any]] else { return nil }
        return outs.compactMap { out in
            guard let md5 = out["md5"] as? String, let path = out["path"] as? String else { return nil }
            return Output(md5: md5, size: out["size"] as? Int, path: path)
        }
    }

    /// The pointer that covers `path` and what it says: `path.dvc` (a file output), or the `.dvc` of a folder above
    /// (a directory output, with `path` relative to it).
    public static func pointer(for path: String, exists: (String) throws -> Bool) rethrows -> (file: String, relative: String)? {
        if try exists(path + ".dvc") { return (path + ".dvc", "") }
        var parts = path.split(separator: "/").map(String.init)
        var inside: [String] = []
        while parts.count > 1 {
            inside.insert(parts.removeLast(), at: 0)
            let folder = parts.joined(separator: "/")
            if try exists(folder + ".dvc") { return (folder + ".dvc", inside.joined(separator: "/")) }
        }
        return nil
    }

    /// A remote of `.dvc/config`: its URL (a folder, or `s3://bucket/prefix`) and, for S3-compatible servers, the
    /// endpoint.
    public struct Remote: Sendable, Equatable {
        public var name: String
        public var url: String
        public var endpoint: String?
    }

    /// The default remote (`[core] remote = NAME`) of a `.dvc/config`, or the only one when there is no default.
    public static func defaultRemote(config text: String) -> Remote? {
        var section = ""
        var core: [String: String] = [:]
        var remotes: [String: [String: String]] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingCharacters(in: CharacterSet(charactersIn: "' "))
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if section == "core" {
                core[key] = value
            } else if section.hasPrefix("remote \""), section.hasSuffix("\"") {
                remotes[String(section.dropFirst(8).dropLast()), default: [:]][key] = value
            }
        }
        let name = core["remote"] ?? (remotes.count == 1 ? remotes.keys.first : nil)
        guard let name, let values = remotes[name], let url = values["url"] else { return nil }
        return Remote(name: name, url: url, endpoint: values["endpointurl"])
    }

    /// Where DVC 3 keeps an object in a remote: `files/md5/<first two hex digits>/<the rest>`.
    public static func objectPath(_ md5: String) -> String { "files/md5/\(md5.prefix(2))/\(md5.dropFirst(2))" }
}
