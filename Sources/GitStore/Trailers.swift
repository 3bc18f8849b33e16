internal import CLibGit2

/// Commit-message trailers (`Key: value` lines in the last paragraph), parsed as git parses them.
public enum Trailers {
    /// The trailers of `message`, in order; empty when it has none.
    public static func parse(_ message: String) -> [Trailer] {
        LibGit2.start()
        var array = git_message_trailer_array()
        guard git_message_trailers(&array, message) == 0 else { return [] }
        defer { git_message_trailer_array_free(&array) }
        return (0..<array.count).map { index in
            let trailer = array.trailers[index]
            return Trailer(key: String(cString: trailer.key), value: String(cString: trailer.value))
        }
    }

    /// `message` with `trailers` appended as its last paragraph.
    public static func append(_ trailers: [Trailer], to message: String) -> String {
        var body = message
        while body.hasSuffix("\n") { body.removeLast() }
        guard !trailers.isEmpty else { return body + "\n" }
        return body + "\n\n" + trailers.map { "\($0.key): \($0.value)" }.joined(separator: "\n") + "\n"
    }
}
