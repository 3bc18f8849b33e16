import Dispatch
import Synchronization

/// Runs async work to completion from synchronous code. The layers above the S3 client (the artifact store, the
/// builder, the reconcile engine) are synchronous; they call the async client through this.
///
/// The work runs on an executor of its own (a dispatch queue, not the concurrency pool), so a caller that happens to
/// hold a thread of the pool does not wait for another one to be free.
public enum Blocking {
    /// Waits for `body` on the calling thread.
    public static func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: QueueExecutor.shared) {
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0! }.get()
    }
}

/// A task executor on a concurrent dispatch queue.
final class QueueExecutor: TaskExecutor {
    static let shared = QueueExecutor()
    private let queue = DispatchQueue(label: "stagecraft.blocking", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
