//! The worker thread: it owns the [`Engine`], so the UI never waits on the GPU. It takes at most
//! one pending job of each kind — a newer ask replaces a pending one, so a slow model always works
//! on the newest frame and stale frames are dropped — and reports back over a channel, waking the
//! UI (`request_repaint`) whenever something lands (emilk's `http_app.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::engine::{Answer, AskOptions, Engine, EngineOptions};
use crate::frames::Frame;
use crate::gpu::{Gpu, GpuOptions};

/// One frame's question, under one request per method (two in compare mode).
pub struct AskJob {
    pub frame: Arc<Frame>,
    pub question: String,
    /// `(plan spec, request)` per slot.
    pub runs: Vec<(String, AskOptions)>,
}

/// One slot's finished answer.
pub struct Outcome {
    pub answer: Answer,
    /// Wall-clock milliseconds from frame to last token.
    pub ms: f64,
}

/// What the worker reports.
pub enum Event {
    /// Loading started on `gpu`; `total` bytes of weights are on their way (watch
    /// `gpu.allocated_bytes()` for progress).
    Loading { gpu: Arc<Gpu>, total: u64 },
    /// The model is ready on the described device, or why not.
    Loaded(Result<String, String>),
    /// An ask started: its frame, question and one plan spec per slot.
    Started { frame: Arc<Frame>, question: String, plans: Vec<String> },
    /// Answer text as it is generated, per slot.
    Token { slot: usize, text: String },
    /// A slot finished.
    Answered { slot: usize, result: Result<Box<Outcome>, String> },
}

#[derive(Default)]
struct Inbox {
    load: Option<(PathBuf, PathBuf)>,
    ask: Option<AskJob>,
    quit: bool,
}

/// The UI's handle on the worker thread.
pub struct Worker {
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    events: Receiver<Event>,
    running: Arc<AtomicBool>,
}

impl Worker {
    /// Starts the thread; `wake` is called after every event (the UI's `request_repaint`).
    pub fn spawn(gpu: GpuOptions, wake: impl Fn() + Send + 'static) -> Worker {
        let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
        let running = Arc::new(AtomicBool::new(false));
        let (tx, events) = std::sync::mpsc::channel();
        let (i, r) = (inbox.clone(), running.clone());
        std::thread::Builder::new()
            .name("glimpse-worker".into())
            .spawn(move || run(&i, &r, &gpu, &Reporter { tx, wake: Box::new(wake) }))
            .expect("spawning a thread only fails when the OS is out of resources");
        Worker { inbox, events, running }
    }

    /// Loads a model pair (replacing any pending load; a pending ask waits for it).
    pub fn load(&self, text: PathBuf, mmproj: PathBuf) {
        self.post(|b| b.load = Some((text, mmproj)));
    }

    /// Queues an ask, dropping the pending one if the worker has not started it yet; returns
    /// whether one was dropped.
    pub fn ask(&self, job: AskJob) -> bool {
        let mut dropped = false;
        self.post(|b| dropped = b.ask.replace(job).is_some());
        dropped
    }

    /// Working, or with a job waiting.
    pub fn busy(&self) -> bool {
        let pending = lock(&self.inbox.0).map(|b| b.load.is_some() || b.ask.is_some()).unwrap_or(false);
        pending || self.running.load(Ordering::Acquire)
    }

    /// Events so far, without waiting.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.events.try_iter()
    }

    fn post(&self, f: impl FnOnce(&mut Inbox)) {
        if let Some(mut b) = lock(&self.inbox.0) {
            f(&mut b);
            self.inbox.1.notify_one();
        }
    }
}

impl Drop for Worker {
    /// Asks the thread to stop after its current job (it is not joined: an answer in flight
    /// must not hold up closing the window).
    fn drop(&mut self) {
        self.post(|b| b.quit = true);
    }
}

/// The inbox lock; `None` only if the other side panicked while holding it.
fn lock(m: &Mutex<Inbox>) -> Option<std::sync::MutexGuard<'_, Inbox>> {
    m.lock().ok()
}

struct Reporter {
    tx: Sender<Event>,
    wake: Box<dyn Fn() + Send>,
}

impl Reporter {
    fn send(&self, e: Event) {
        // A closed channel means the UI is gone; the quit flag ends the loop soon after.
        let _ = self.tx.send(e);
        (self.wake)();
    }
}

enum Job {
    Load(PathBuf, PathBuf),
    Ask(AskJob),
}

fn run(inbox: &(Mutex<Inbox>, Condvar), running: &AtomicBool, gpu: &GpuOptions, out: &Reporter) {
    let mut engine: Option<Engine> = None;
    loop {
        let job = {
            let Some(mut b) = lock(&inbox.0) else { return };
            loop {
                if b.quit {
                    return;
                }
                if let Some((t, m)) = b.load.take() {
                    break Job::Load(t, m);
                }
                if let Some(a) = b.ask.take() {
                    break Job::Ask(a);
                }
                match inbox.1.wait(b) {
                    Ok(g) => b = g,
                    Err(_) => return,
                }
            }
        };
        running.store(true, Ordering::Release);
        match job {
            Job::Load(text, mmproj) => {
                // Free the old model's buffers before the new one's are allocated.
                drop(engine.take());
                let loaded = load(gpu, &text, &mmproj, out);
                out.send(Event::Loaded(loaded.as_ref().map(|e| e.gpu().describe()).map_err(Clone::clone)));
                engine = loaded.ok();
            }
            Job::Ask(job) => ask(engine.as_mut(), job, out),
        }
        running.store(false, Ordering::Release);
        (out.wake)();
    }
}

fn load(gpu: &GpuOptions, text: &std::path::Path, mmproj: &std::path::Path, out: &Reporter) -> Result<Engine, String> {
    let total = Engine::weight_bytes(text, mmproj).map_err(|e| format!("cannot read the model files: {e}"))?;
    let gpu = Arc::new(Gpu::new(gpu).map_err(|e| e.to_string())?);
    out.send(Event::Loading { gpu: gpu.clone(), total });
    Engine::load_on(gpu, text, mmproj, &EngineOptions::default()).map_err(|e| format!("cannot load the model: {e}"))
}

fn ask(engine: Option<&mut Engine>, job: AskJob, out: &Reporter) {
    let plans = job.runs.iter().map(|(spec, _)| spec.clone()).collect();
    out.send(Event::Started { frame: job.frame.clone(), question: job.question.clone(), plans });
    let Some(engine) = engine else {
        for slot in 0..job.runs.len() {
            out.send(Event::Answered { slot, result: Err("no model loaded".into()) });
        }
        return;
    };
    for (slot, (_, opts)) in job.runs.iter().enumerate() {
        let t = Instant::now();
        let mut stream = |piece: &str| out.send(Event::Token { slot, text: piece.to_string() });
        let result = engine
            .ask(&job.frame.image, &job.question, opts, &mut stream)
            .map(|answer| Box::new(Outcome { answer, ms: t.elapsed().as_secs_f64() * 1e3 }))
            .map_err(|e| e.to_string());
        out.send(Event::Answered { slot, result });
    }
}
