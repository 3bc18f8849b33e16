public import Foundation

/// Reads a large CSV file a block of rows at a time: each block is a small CSV text of its own (the header and
/// about `rows` records), so that memory stays bounded. Records with quoted newlines are kept whole.
public struct CSVChunks: Sequence, IteratorProtocol {
    private let handle: FileHandle
    private let rowsPerChunk: Int
    private var pending = Data()
    private var header: Data?
    private var finished = false
    /// The 1-based line of the first record in the last chunk returned, for error messages.
    public private(set) var firstLine = 2
    private var nextLine = 2

    public init(url: URL, rowsPerChunk: Int = 50_000) throws {
        handle = try FileHandle(forReadingFrom: url)
        self.rowsPerChunk = rowsPerChunk
    }

    /// The next chunk (header + records), or nil at the end of the file.
    public mutating func next() -> Data? {
        while !finished {
            // Find the end of `rowsPerChunk` records (newlines outside quotes) in what has been read.
            var records = 0, inQuotes = false, cut: Int?
            var lines = 0
            for (offset, byte) in pending.enumerated() {
                if byte == 34 { inQuotes.toggle() }
                if byte == 10 {
                    lines += 1
                    if !inQuotes {
                        if header == nil {
                            header = pending.prefix(offset + 1)
                            pending = pending.dropFirst(offset + 1)
                            return next()
                        }
                        records += 1
                        if records == rowsPerChunk { cut = offset + 1; break }
                    }
                }
            }
            if let cut {
                let chunk = pending.prefix(cut)
                pending = Data(pending.dropFirst(cut))
                firstLine = nextLine
                nextLine += lines
                return (header ?? Data()) + chunk
            }
            let more = handle.readData(ofLength: 8 << 20)
            if more.isEmpty {
                finished = true
            } else {
                pending.append(more)
            }
        }
        guard let header else { return nil }
        guard !pending.isEmpty, pending.contains(where: { $0 != 10 && $0 != 13 }) else { return nil }
        let chunk = pending
        pending = Data()
        firstLine = nextLine
        return header + chunk
    }
}
