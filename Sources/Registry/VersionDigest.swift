public import Foundation
import Crypto

/// The name of a version: sha256 over its canonical build inputs.
///
/// The hashed text is, line by line: `stagecraft-version`, `format <model file format version>`,
/// `spec <the manifest's spec as canonical JSON>`, then `data <path> <sha256 of the file>` for every data file
/// the build reads, sorted by path; for a model trained by its own command, `code <path> <git object id>` for each
/// of its code paths and `environment <path> <sha256>`. Same inputs, same digest.
public enum VersionDigest {
    /// The 64-hex-digit digest.
    /// - Parameter codeHashes: a trainer command's code paths with their git object ids, and its environment file
    ///   (`environment <path>` → sha256); empty for built-in trainers, whose digests are as they always were.
    public static func compute(
        canonicalSpec: String, dataHashes: [String: String], formatVersion: Int, codeHashes: [String: String] = [:]
    ) -> String {
        var text = "stagecraft-version\nformat \(formatVersion)\nspec \(canonicalSpec)\n"
        for path in dataHashes.keys.sorted() { text += "data \(path) \(dataHashes[path]!)\n" }
        for key in codeHashes.keys.sorted() { text += "\(key.hasPrefix("environment ") ? "" : "code ")\(key) \(codeHashes[key]!)\n" }
        return sha256(Data(text.utf8))
    }

    /// The sha256 of `data` as 64 lowercase hex digits.
    public static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// The first 12 hex digits, as environment files and messages show a version.
    public static func short(_ digest: String) -> String { String(digest.prefix(12)) }
}
