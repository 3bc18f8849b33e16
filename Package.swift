// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "stagecraft",
    products: [
        .executable(name: "stagecraft", targets: ["stagecraft"]),
        .executable(name: "learning-benchmark", targets: ["learning-benchmark"]),
        .library(name: "StagecraftCommands", targets: ["StagecraftCommands"]),
        .library(name: "GitStore", targets: ["GitStore"]),
        .library(name: "Manifests", targets: ["Manifests"]),
        .library(name: "StagecraftTesting", targets: ["StagecraftTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
    ],
    targets: [
        // libgit2, as the system provides it. Only GitStore imports this.
        .systemLibrary(
            name: "CLibGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        // The only Swift code that calls libgit2.
        .target(
            name: "GitStore",
            dependencies: ["CLibGit2"],
            swiftSettings: swiftSettings
        ),
        // Model / Environment / project files: decoding with positions, validation.
        .target(
            name: "Manifests",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // A cache prefetch hint for the ML core's scattered reads (an inline C function; Swift has no spelling for it).
        .target(name: "CPrefetch"),
        // The ML core: CSV data, feature pipeline, trainers, metrics, search, model files. No git, no HTTP.
        .target(
            name: "Learning",
            dependencies: ["CPrefetch"],
            swiftSettings: swiftSettings
        ),
        // The artifact store (content-addressed builds) and the state store (SQLite): what serves, every deployment.
        .target(
            name: "Registry",
            dependencies: [
                "Learning", "Manifests",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Open Inference Protocol's gRPC service and messages, generated from Proto/ by scripts/generate-grpc.
        .target(
            name: "InferenceGRPC",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Proto"]
        ),
        // A model's own programs: its trainer and its model server as supervised processes, and the V2 requests
        // Stagecraft forwards to that server.
        .target(
            name: "ExternalModels",
            dependencies: [
                "Learning", "Manifests", "LoopbackHTTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The inference server: Open Inference Protocol (KServe V2) over Hummingbird, and over gRPC.
        .target(
            name: "Serving",
            dependencies: [
                "Learning", "Registry", "InferenceGRPC", "RepositoryWire", "ExternalModels",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        // A queue of files in a folder, shared by worker processes: atomic claims, leases, retries, a dead-letter folder.
        // The state store in PostgreSQL, for reconcilers on several hosts.
        .target(
            name: "PostgresState",
            dependencies: [
                "Registry",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // A small S3 client (Signature Version 4 over async-http-client): artifacts and data in S3-compatible storage.
        .target(
            name: "ObjectStorage",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The model repository API's wire types, shared by the server and the reconciler's client.
        .target(name: "RepositoryWire", swiftSettings: swiftSettings),
        .target(
            name: "FileQueue",
            swiftSettings: swiftSettings
        ),
        // A minimal HTTP/1.1 client for servers on this machine: the reconciler drives servers with it, tests too.
        .target(
            name: "LoopbackHTTP",
            swiftSettings: swiftSettings
        ),
        // The GitOps logic: a project read from git at a ref; build, plan, reconcile, promote, rollback, history.
        .target(
            name: "Reconciler",
            dependencies: [
                "GitStore", "Manifests", "Learning", "Registry", "LoopbackHTTP", "RepositoryWire", "PostgresState", "InferenceGRPC",
                "ObjectStorage", "ExternalModels",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Serving on KServe: the objects an environment renders to, their status read back, and a serving target that
        // applies them with kubectl.
        .target(
            name: "KServe",
            dependencies: [
                "Manifests", "Learning", "Registry", "Reconciler", "ObjectStorage", "InferenceGRPC",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The web console: the board, model and environment pages rendered by the server (Mustache, inline SVG), their
        // JSON under /api, live updates over server-sent events, and signed-in actions through the CLI's code paths.
        .target(
            name: "WebConsole",
            dependencies: [
                "GitStore", "Manifests", "Learning", "Registry", "Reconciler", "LoopbackHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The command-line commands, as a library tested in-process.
        .target(
            name: "StagecraftCommands",
            dependencies: [
                "GitStore", "Manifests", "Learning", "Registry", "Serving", "Reconciler", "LoopbackHTTP", "FileQueue", "KServe",
                "ExternalModels", "WebConsole",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        // The executable: an entry point only.
        .executableTarget(
            name: "stagecraft",
            dependencies: ["StagecraftCommands"],
            swiftSettings: swiftSettings
        ),
        // Benchmarks/learning: reads a CSV, fits, and prints wall time, peak memory and AUC as JSON.
        .executableTarget(
            name: "learning-benchmark",
            dependencies: ["Learning"],
            path: "Benchmarks/learning/Sources",
            swiftSettings: swiftSettings
        ),
        // Test support shared by every test target: scratch git repositories, processes, fixtures.
        .target(
            name: "StagecraftTesting",
            dependencies: ["GitStore", "LoopbackHTTP", "Reconciler", "Manifests", "Registry"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GitStoreTests",
            dependencies: ["GitStore", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ManifestsTests",
            dependencies: ["Manifests", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LearningTests",
            dependencies: ["Learning", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegistryTests",
            dependencies: ["Registry", "PostgresState", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ServingTests",
            dependencies: ["Serving", "StagecraftTesting", "LoopbackHTTP", .product(name: "NIOEmbedded", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReconcilerTests",
            dependencies: ["Reconciler", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KServeTests",
            dependencies: ["KServe", "Reconciler", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StagecraftCommandsTests",
            dependencies: ["StagecraftCommands", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExternalModelsTests",
            dependencies: ["ExternalModels", "Learning", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebConsoleTests",
            dependencies: ["WebConsole", "StagecraftTesting", "LoopbackHTTP"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FileQueueTests",
            dependencies: ["FileQueue", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ObjectStorageTests",
            dependencies: ["ObjectStorage", "StagecraftTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["StagecraftTesting", "LoopbackHTTP"],
            swiftSettings: swiftSettings
        ),
    ]
)
