//! The frame feed: a thread pulls frames from a [`FrameSource`] at the source's own pace (a
//! camera's frame rate, or a slideshow period) and keeps only the newest one; the UI takes it
//! when it draws. Errors of a frame (corrupt file, empty frame, camera unplugged) are kept as a
//! message and the feed goes on.

use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dataset::Split;
use crate::frames::{Files, Frame, FrameError, FrameSource, Scenes, fit_frame};

/// Pause after an error before the next try (a camera that is gone is not polled flat out, and
/// a broken file does not hold up a slideshow for a whole period).
const RETRY: Duration = Duration::from_millis(500);

/// Where frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// Generated scenes of the held-out split, `size` pixels square, each with its question.
    Scenes { size: u32 },
    /// Image files or folders, looped.
    Images(Vec<PathBuf>),
    /// Webcam `index` at (about) `resolution`.
    #[cfg(feature = "camera")]
    Camera { index: u32, resolution: Option<(u32, u32)> },
}

impl SourceSpec {
    /// Opens the source.
    pub fn open(&self) -> Result<Box<dyn FrameSource>, FrameError> {
        Ok(match self {
            SourceSpec::Scenes { size } => Box::new(Scenes::new(Split::Test, *size)),
            SourceSpec::Images(paths) => Box::new(Files::new(paths, true)?),
            #[cfg(feature = "camera")]
            SourceSpec::Camera { index, resolution } => {
                Box::new(crate::frames::camera::Webcam::open(*index, *resolution)?)
            }
        })
    }

    /// Whether the source paces itself (a camera); others run as a slideshow.
    pub fn is_live(&self) -> bool {
        #[cfg(feature = "camera")]
        if let SourceSpec::Camera { .. } = self {
            return true;
        }
        false
    }
}

/// What the feed has for the UI.
#[derive(Default)]
struct Shared {
    latest: Option<Arc<Frame>>,
    error: Option<String>,
    ended: bool,
}

enum Control {
    Next,
}

/// The UI's handle on the feed thread; dropping it stops the thread after its current frame.
pub struct Feed {
    describe: String,
    shared: Arc<Mutex<Shared>>,
    control: Sender<Control>,
}

impl Feed {
    /// Starts pulling from `source`, waiting `period` between frames (zero: as fast as the
    /// source delivers); `wake` is called after every frame or error.
    pub fn start(mut source: Box<dyn FrameSource>, period: Duration, wake: impl Fn() + Send + 'static) -> Feed {
        let describe = source.describe();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (control, rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("glimpse-feed".into())
            .spawn(move || {
                loop {
                    let (pulled, pause) = match source.next_frame() {
                        Ok(Some(f)) => (Ok(Some(f)), period),
                        Ok(None) => (Ok(None), Duration::MAX),
                        Err(e) => (Err(e), RETRY),
                    };
                    let Ok(mut sh) = s.lock() else { return };
                    match pulled.and_then(|f| f.map(checked).transpose()) {
                        Ok(Some(frame)) => {
                            sh.latest = Some(Arc::new(frame));
                            sh.error = None;
                        }
                        Ok(None) => sh.ended = true,
                        Err(e) => sh.error = Some(e.to_string()),
                    }
                    drop(sh);
                    wake();
                    match rx.recv_timeout(pause) {
                        Ok(Control::Next) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        Feed { describe, shared, control }
    }

    /// What the source is.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The newest frame delivered so far.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.shared.lock().ok().and_then(|s| s.latest.clone())
    }

    /// The last frame's error, until a good frame arrives.
    pub fn error(&self) -> Option<String> {
        self.shared.lock().ok().and_then(|s| s.error.clone())
    }

    /// Whether the source has no more frames.
    pub fn ended(&self) -> bool {
        self.shared.lock().is_ok_and(|s| s.ended)
    }

    /// Pulls the next frame now instead of at the end of the period.
    pub fn next(&self) {
        // The thread may have ended (a source without more frames): nothing to wake.
        let _ = self.control.send(Control::Next);
    }
}

/// Any source's frame made safe to show and ask about: non-empty, at most `MAX_SIDE` a side.
fn checked(frame: Frame) -> Result<Frame, FrameError> {
    let image = fit_frame(frame.image, &frame.label)?;
    Ok(Frame { image, ..frame })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// Yields an empty frame, an unplugged-camera error, then one good frame, then ends.
    struct Flaky(u64);

    impl FrameSource for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
            self.0 += 1;
            let frame = |image| Ok(Some(Frame { index: self.0, label: format!("f{}", self.0), image, question: None }));
            match self.0 {
                1 => frame(RgbImage::new(0, 0)),
                2 => Err(FrameError::Unreadable {
                    label: "camera 0".into(),
                    message: "stopped delivering frames".into(),
                }),
                3 => frame(RgbImage::new(3, 2)),
                _ => Ok(None),
            }
        }
    }

    fn wait(what: &str, done: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn feed_reports_bad_frames_and_goes_on() {
        let feed = Feed::start(Box::new(Flaky(0)), Duration::from_secs(3600), || {});
        wait("the empty frame's error", || feed.error().is_some());
        assert_eq!(feed.error().unwrap(), "f1: empty frame (0x0)");
        assert!(feed.latest().is_none());
        feed.next();
        wait("the camera error", || feed.error().is_some_and(|e| e.starts_with("camera 0")));
        // After an error the feed retries on its own (no `next` needed).
        wait("the good frame", || feed.latest().is_some());
        assert_eq!(feed.latest().unwrap().image.dimensions(), (3, 2));
        assert!(feed.error().is_none());
        feed.next();
        wait("the end", || feed.ended());
        assert_eq!(feed.latest().unwrap().label, "f3", "the last frame stays");
    }
}
