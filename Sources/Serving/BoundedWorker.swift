import Foundation
import Synchronization

/// A thread of its own that runs jobs in order from a bounded queue: blocking work (file writes, a second model's
/// predictions) off the request path and off the async executors. A full queue refuses a job at once (the caller
/// counts it as dropped); nothing waits on a request's path.
final class BoundedWorker: Sendable {
    typealias Job = @Sendable () -> Void

    private struct Queue {
        var jobs: [Job] = []
        var head = 0
        var running = false
        var closed = false
        var count: Int { jobs.count - head }
    }

    let capacity: Int
    private let queue = Mutex(Queue())
    private let wake = NSCondition()

    /// Starts the worker's thread.
    init(name: String, capacity: Int) {
        self.capacity = capacity
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    /// Adds a job; false (and the job is not run) when the queue holds `capacity` jobs already or is closed.
    @discardableResult
    func submit(_ job: @escaping Job) -> Bool {
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.closed, queue.count < capacity else { return false }
            queue.jobs.append(job)
            return true
        }
        if accepted {
            wake.lock()
            wake.signal()
            wake.unlock()
        }
        return accepted
    }

    /// Jobs waiting (not counting one that runs).
    var pending: Int { queue.withLock { $0.count } }

    /// Runs `job` after every job submitted before it, even when the queue is full (for a flush).
    func after(_ job: @escaping Job) {
        queue.withLock { $0.jobs.append(job) }
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    /// Returns once every job submitted so far has run (blocking: for tests and synchronous callers).
    func drain() {
        let done = NSCondition()
        let finished = Mutex(false)
        after {
            done.lock()
            finished.withLock { $0 = true }
            done.signal()
            done.unlock()
        }
        done.lock()
        while !finished.withLock({ $0 }) { done.wait() }
        done.unlock()
    }

    /// Returns once every job submitted so far has run, without blocking the caller's thread.
    func drained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            after { continuation.resume() }
        }
    }

    /// Stops taking jobs; the thread ends once the queue is empty.
    func close() {
        queue.withLock { $0.closed = true }
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    private func next() -> Job?? {
        queue.withLock { queue -> Job?? in
            if queue.head < queue.jobs.count {
                let job = queue.jobs[queue.head]
                queue.head += 1
                if queue.head > 1024 && queue.head * 2 > queue.jobs.count {
                    queue.jobs.removeFirst(queue.head)
                    queue.head = 0
                }
                return .some(job)
            }
            return queue.closed ? .none : .some(nil)
        }
    }

    private func loop() {
        while true {
            switch next() {
            case .none: return
            case .some(.some(let job)): job()
            case .some(.none):
                wake.lock()
                if queue.withLock({ $0.count == 0 && !$0.closed }) { wake.wait(until: Date().addingTimeInterval(1)) }
                wake.unlock()
            }
        }
    }
}
