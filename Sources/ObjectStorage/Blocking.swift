import Dispatch
import Synchronization

/// Runs async work to completion from synchronous code. The layers above the S3 client (the artifact store, the
/// builder, the reconcile engine) are synchronous and run on threads of their own, never on the concurrency pool:
/// they call the async client through this.
public enum Blocking {
    /// Waits for `body` on the calling thread. Never call it from an async context.
    public static func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0! }.get()
    }
}
