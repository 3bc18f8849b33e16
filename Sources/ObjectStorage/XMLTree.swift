import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// An XML element as S3 answers use them: a name, its text and its children. Namespaces are dropped.
struct XMLTree: Sendable {
    var name: String
    var text: String = ""
    var children: [XMLTree] = []

    /// The first child named `name`.
    subscript(_ name: String) -> XMLTree? { children.first { $0.name == name } }

    /// Every child named `name`.
    func all(_ name: String) -> [XMLTree] { children.filter { $0.name == name } }

    /// Parses a document; nil when it is not well-formed.
    static func parse(_ data: Data) -> XMLTree? {
        let builder = Builder()
        let parser = XMLParser(data: data)
        parser.delegate = builder
        guard parser.parse(), let root = builder.root else { return nil }
        return root
    }

    /// Escapes text for an element's content.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&apos;")
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var stack: [XMLTree] = []
        var root: XMLTree?

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            stack.append(XMLTree(name: elementName.split(separator: ":").last.map(String.init) ?? elementName))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if !stack.isEmpty { stack[stack.count - 1].text += string }
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            guard let element = stack.popLast() else { return }
            if stack.isEmpty { root = element } else { stack[stack.count - 1].children.append(element) }
        }
    }
}
