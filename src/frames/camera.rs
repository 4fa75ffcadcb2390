//! Webcam frames through nokhwa: V4L2 on Linux, AVFoundation on macOS, Media Foundation on
//! Windows. A camera that fails (unplugged, busy) is an error for that frame; the next call
//! tries to open it again, so plugging it back in resumes the stream.

use image::RgbImage;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};

use super::{Frame, FrameError, FrameSource, fit_frame};

/// A camera the system lists.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraInfo {
    pub index: u32,
    pub name: String,
}

/// The cameras the system lists now (empty when there are none or listing fails).
pub fn list() -> Vec<CameraInfo> {
    let Ok(found) = nokhwa::query(ApiBackend::Auto) else { return Vec::new() };
    found
        .iter()
        .filter_map(|c| match c.index() {
            CameraIndex::Index(i) => Some(CameraInfo { index: *i, name: c.human_name() }),
            CameraIndex::String(_) => None,
        })
        .collect()
}

/// Frames from camera `index` at (about) `resolution`, or at the camera's fastest format.
pub struct Webcam {
    index: u32,
    resolution: Option<(u32, u32)>,
    camera: Option<nokhwa::Camera>,
    next: u64,
}

impl Webcam {
    /// Opens camera `index` (see [`list`]); the error says why it cannot stream.
    pub fn open(index: u32, resolution: Option<(u32, u32)>) -> Result<Webcam, FrameError> {
        let mut w = Webcam { index, resolution, camera: None, next: 0 };
        w.camera = Some(w.connect()?);
        Ok(w)
    }

    fn label(&self) -> String {
        format!("camera {}", self.index)
    }

    fn connect(&self) -> Result<nokhwa::Camera, FrameError> {
        let wanted = match self.resolution {
            // MJPEG is what most webcams deliver at larger sizes; Closest falls back to others.
            Some((w, h)) => {
                RequestedFormatType::Closest(CameraFormat::new(Resolution::new(w, h), FrameFormat::MJPEG, 30))
            }
            None => RequestedFormatType::AbsoluteHighestFrameRate,
        };
        let unavailable = |e: nokhwa::NokhwaError| FrameError::Unreadable {
            label: self.label(),
            message: format!("not available (unplugged or in use?): {e}"),
        };
        let mut cam = nokhwa::Camera::new(CameraIndex::Index(self.index), RequestedFormat::new::<RgbFormat>(wanted))
            .map_err(unavailable)?;
        cam.open_stream().map_err(unavailable)?;
        Ok(cam)
    }
}

/// One captured buffer as an RGB image: MJPEG through `image` (nokhwa's own MJPEG decoder needs
/// mozjpeg), every other format through nokhwa's converters.
fn decode(buffer: &nokhwa::Buffer, label: &str) -> Result<RgbImage, FrameError> {
    if buffer.source_frame_format() == FrameFormat::MJPEG {
        return super::frame_image(buffer.buffer(), label);
    }
    let img = buffer
        .decode_image::<RgbFormat>()
        .map_err(|e| FrameError::Unreadable { label: label.to_string(), message: e.to_string() })?;
    fit_frame(img, label)
}

impl FrameSource for Webcam {
    fn describe(&self) -> String {
        match &self.camera {
            Some(c) => {
                let r = c.resolution();
                format!("{} ({}, {}x{})", self.label(), c.info().human_name(), r.width(), r.height())
            }
            None => format!("{} (disconnected)", self.label()),
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let label = self.label();
        let camera = match &mut self.camera {
            Some(c) => c,
            None => self.camera.insert(self.connect()?),
        };
        let image = match camera.frame() {
            Ok(buffer) => decode(&buffer, &label)?,
            Err(e) => {
                // Drop the stream: the next call reopens the camera (it may come back).
                self.camera = None;
                return Err(FrameError::Unreadable { label, message: format!("stopped delivering frames: {e}") });
            }
        };
        let index = self.next;
        self.next += 1;
        Ok(Some(Frame { index, label, image, question: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_camera_is_an_error_not_a_panic() {
        // No machine has 4000 cameras; opening one fails with its label and a reason.
        let e = Webcam::open(4000, Some((640, 480))).err().expect("camera 4000 cannot exist").to_string();
        assert!(e.starts_with("camera 4000: not available"), "{e}");
        assert!(list().iter().all(|c| c.index != 4000));
    }
}
