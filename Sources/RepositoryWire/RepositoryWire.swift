public import Foundation

// The model repository API's requests and answers (`/v2/repository/...`), as the server decodes and encodes them
// and the reconciler's client encodes and decodes them: one definition for both sides.

/// A request body: `{"parameters": {...}}`; an empty body has no parameters.
public struct RepositoryRequest<Parameters: Codable & Sendable>: Codable, Sendable {
    /// The request's parameters; nil for an empty body.
    public var parameters: Parameters?

    /// A request with these parameters.
    public init(parameters: Parameters?) { self.parameters = parameters }
}

/// `load`: the version to load; `default: false` loads it in a slot that takes no traffic.
public struct LoadParameters: Codable, Sendable, Hashable {
    /// The version to load (a digest or a prefix of at least 12 hex digits).
    public var version: String
    /// Whether it takes the default traffic at once (true when absent); false loads it in a slot.
    public var `default`: Bool?

    /// Parameters of a load.
    public init(version: String, default: Bool?) {
        self.version = version
        self.default = `default`
    }
}

/// `unload`: one version, or (nil) the whole model.
public struct UnloadParameters: Codable, Sendable, Hashable {
    /// The version to unload; nil unloads the model.
    public var version: String?

    /// Parameters of an unload.
    public init(version: String?) { self.version = version }
}

/// A share of a model's traffic.
public struct WireShare: Codable, Sendable, Hashable {
    /// The version (full digest) that gets this share.
    public var version: String
    /// Percent of the model's requests, 0 to 100.
    public var weight: Int

    /// A share of traffic.
    public init(version: String, weight: Int) {
        self.version = version
        self.weight = weight
    }
}

/// `route`, and each model's routing in the index: the default version, a split, a shadow.
public struct RouteParameters: Codable, Sendable, Hashable {
    /// The version that answers requests outside a split.
    public var `default`: String
    /// A split between loaded versions, summing to 100; nil for none.
    public var traffic: [WireShare]?
    /// A version that gets a copy of each request; nil for none.
    public var shadow: String?

    /// A route.
    public init(default: String, traffic: [WireShare]?, shadow: String?) {
        self.default = `default`
        self.traffic = traffic
        self.shadow = shadow
    }
}

/// `index`: every loaded version and each model's routing.
public struct RepositoryIndex: Codable, Sendable {
    /// One loaded version.
    public struct Model: Codable, Sendable, Hashable {
        /// The model's name.
        public var name: String
        /// The version's full digest.
        public var version: String
        /// The commit it was built from.
        public var source: String
        /// `READY` once loaded and warmed.
        public var state: String
        /// Whether it is the model's default version.
        public var `default`: Bool

        /// An entry of the index.
        public init(name: String, version: String, source: String, state: String, default: Bool) {
            self.name = name
            self.version = version
            self.source = source
            self.state = state
            self.default = `default`
        }
    }

    /// Every loaded version.
    public var models: [Model]
    /// Each model's route, by model name.
    public var routes: [String: RouteParameters]

    /// An index.
    public init(models: [Model], routes: [String: RouteParameters]) {
        self.models = models
        self.routes = routes
    }
}

/// The answer to `load`.
public struct LoadAnswer: Codable, Sendable {
    /// The model.
    public var name: String
    /// The version loaded (full digest).
    public var version: String
    /// Whether it took the default traffic.
    public var `default`: Bool
    /// `READY`.
    public var state: String

    /// The answer to a load.
    public init(name: String, version: String, default: Bool, state: String) {
        self.name = name
        self.version = version
        self.default = `default`
        self.state = state
    }
}

/// The answer to `route`.
public struct RouteAnswer: Codable, Sendable {
    /// The model.
    public var name: String
    /// Its default version now.
    public var `default`: String
    /// `ROUTED`.
    public var state: String

    /// The answer to a route.
    public init(name: String, default: String, state: String) {
        self.name = name
        self.default = `default`
        self.state = state
    }
}

/// The answer to `unload`: the version unloaded, or `all`.
public struct UnloadAnswer: Codable, Sendable {
    /// The model.
    public var name: String
    /// The version unloaded, or `all`.
    public var unloaded: String

    /// The answer to an unload.
    public init(name: String, unloaded: String) {
        self.name = name
        self.unloaded = unloaded
    }
}

/// Every refusal: `{"error": "..."}`.
public struct ErrorAnswer: Codable, Sendable {
    /// What is wrong, for a person.
    public var error: String

    /// A refusal.
    public init(error: String) { self.error = error }
}

/// A body that is not the wire type it should be, with a message that says what is wrong.
public struct WireError: Error, Sendable, CustomStringConvertible {
    /// What is wrong with the body.
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
