//! The service's own operations and loops: the closed set of operation kinds (`job`), and
//! the domain loops the engine runs (lease reaper, retention, scheduler). The engine itself
//! (queue, workers, listener, periodic loops) is `dbaas-engine`.

pub mod job;
pub mod reaper;
pub mod retention;
pub mod scheduler;
