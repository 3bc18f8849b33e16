import Foundation
public import GitStore
public import Registry

/// Human names for versions (`champion`, `baseline`): an annotated git tag `stagecraft/<model>/<alias>` on the
/// build's source commit, its message carrying the digest (`Stagecraft-Version`). They travel with the repository.
public enum VersionAliases {
    /// The tag of `alias` of `model`.
    public static func tagName(model: String, alias: String) -> String { "stagecraft/\(model)/\(alias)" }

    /// Whether `alias` can name a version: 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.
    public static func isValid(_ alias: String) -> Bool {
        guard let first = alias.unicodeScalars.first, alias.count <= 63,
            ("a"..."z").contains(first) || ("0"..."9").contains(first)
        else { return false }
        return alias.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "."
        }
    }

    /// Tags `build` as `alias` (moving an existing alias only with `force`).
    public static func tag(_ build: BuildInfo, as alias: String, in repository: Repository, by tagger: Signature, force: Bool) throws {
        guard let source = ObjectID(hex: build.source) else {
            throw ReconcileError(.invalid, "the source commit of \(VersionDigest.short(build.digest)) is unknown")
        }
        let name = tagName(model: build.model, alias: alias)
        if !force, let existing = try aliases(model: build.model, in: repository)[alias], existing != build.digest {
            throw ReconcileError(
                .refused,
                "'\(alias)' already names \(VersionDigest.short(existing)) of '\(build.model)'; --force moves it to "
                    + VersionDigest.short(build.digest))
        }
        let message = Trailers.append(
            [Trailer(key: "Stagecraft-Model", value: build.model), Trailer(key: "Stagecraft-Version", value: build.digest)],
            to: "\(build.model) \(alias): \(VersionDigest.short(build.digest))")
        try repository.createTag(name, on: source, message: message, tagger: tagger, force: true)
    }

    /// The aliases of `model`: alias → digest.
    public static func aliases(model: String, in repository: Repository) throws -> [String: String] {
        var found: [String: String] = [:]
        for tag in try repository.annotatedTags(prefix: "stagecraft/\(model)/") {
            let alias = String(tag.name.dropFirst("stagecraft/\(model)/".count))
            guard !alias.contains("/"), let digest = Trailers.parse(tag.message).last(where: { $0.key == "Stagecraft-Version" })?.value
            else { continue }
            found[alias] = digest
        }
        return found
    }

    /// Every alias of every model: (model, alias, digest), sorted.
    public static func all(in repository: Repository) throws -> [(model: String, alias: String, digest: String)] {
        try repository.annotatedTags(prefix: "stagecraft/").compactMap { tag in
            let parts = tag.name.split(separator: "/").map(String.init)
            let trailers = Trailers.parse(tag.message)
            guard parts.count == 3, let digest = trailers.last(where: { $0.key == "Stagecraft-Version" })?.value else { return nil }
            return (parts[1], parts[2], digest)
        }.sorted { ($0.model, $0.alias) < ($1.model, $1.alias) }
    }
}
