public import Foundation

// The model repository API's requests and answers (`/v2/repository/...`), as the server decodes and encodes them
// and the reconciler's client encodes and decodes them: one definition for both sides.

/// A request body: `{"parameters": {...}}`; an empty body has no parameters.
public struct RepositoryRequest<Parameters: Codable & Sendable>: Codable, Sendable {
    public var parameters: Parameters?

    public init(parameters: Parameters?) { self.parameters = parameters }
}

/// `load`: the version to load; `default: false` loads it in a slot that takes no traffic.
public struct LoadParameters: Codable, Sendable, Hashable {
    public var version: String
    public var `default`: Bool?

    public init(version: String, default: Bool?) {
        self.version = version
        self.default = `default`
    }
}

/// `unload`: one version, or (nil) the whole model.
public struct UnloadParameters: Codable, Sendable, Hashable {
    public var version: String?

    public init(version: String?) { self.version = version }
}

/// A share of a model's traffic.
public struct WireShare: Codable, Sendable, Hashable {
    public var version: String
    public var weight: Int

    public init(version: String, weight: Int) {
        self.version = version
        self.weight = weight
    }
}

/// `route`, and each model's routing in the index: the default version, a split, a shadow.
public struct RouteParameters: Codable, Sendable, Hashable {
    public var `default`: String
    public var traffic: [WireShare]?
    public var shadow: String?

    public init(default: String, traffic: [WireShare]?, shadow: String?) {
        self.default = `default`
        self.traffic = traffic
        self.shadow = shadow
    }
}

/// `index`: every loaded version and each model's routing.
public struct RepositoryIndex: Codable, Sendable {
    public struct Model: Codable, Sendable, Hashable {
        public var name: String
        public var version: String
        public var source: String
        public var state: String
        public var `default`: Bool

        public init(name: String, version: String, source: String, state: String, default: Bool) {
            self.name = name
            self.version = version
            self.source = source
            self.state = state
            self.default = `default`
        }
    }

    public var models: [Model]
    public var routes: [String: RouteParameters]

    public init(models: [Model], routes: [String: RouteParameters]) {
        self.models = models
        self.routes = routes
    }
}

/// The answer to `load`.
public struct LoadAnswer: Codable, Sendable {
    public var name: String
    public var version: String
    public var `default`: Bool
    public var state: String

    public init(name: String, version: String, default: Bool, state: String) {
        self.name = name
        self.version = version
        self.default = `default`
        self.state = state
    }
}

/// The answer to `route`.
public struct RouteAnswer: Codable, Sendable {
    public var name: String
    public var `default`: String
    public var state: String

    public init(name: String, default: String, state: String) {
        self.name = name
        self.default = `default`
        self.state = state
    }
}

/// The answer to `unload`: the version unloaded, or `all`.
public struct UnloadAnswer: Codable, Sendable {
    public var name: String
    public var unloaded: String

    public init(name: String, unloaded: String) {
        self.name = name
        self.unloaded = unloaded
    }
}

/// Every refusal: `{"error": "..."}`.
public struct ErrorAnswer: Codable, Sendable {
    public var error: String

    public init(error: String) { self.error = error }
}

/// A body that is not the wire type it should be, with a message that says what is wrong.
public struct WireError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Encoding and decoding of the wire types.
public enum Wire {
    /// JSON with sorted keys.
    public static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    /// Decodes `data` (empty: a request without parameters) as `T`.
    /// - Throws: ``WireError``: `usage` when a required field is missing or the body is not JSON; `"key" must be …`
    ///   when a field has the wrong type.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, usage: String) throws(WireError) -> T {
        let body = data.isEmpty ? Data("{}".utf8) : data
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch DecodingError.typeMismatch(let expected, let context) {
            let key = context.codingPath.last?.stringValue ?? "the body"
            throw WireError(message: "\"\(key)\" must be \(describe(expected))")
        } catch {
            throw WireError(message: usage)
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: return "true or false"
        case is Int.Type: return "a whole number"
        case is String.Type: return "a string"
        default: return "of another type"
        }
    }
}
