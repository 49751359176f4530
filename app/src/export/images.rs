//! Mask and salience snapshots as pictures: the snapshot's channels side by
//! side (a one-pixel gap between them), each map scaled up by a whole factor
//! to at least 64 pixels high, in grey. Mask: kept white, dropped black.
//! Salience: `|x|` over the snapshot's largest value, black to white.

use std::io::Cursor;

use image::{GrayImage, ImageFormat, Luma};

use super::tfevents::Image;
use crate::run::dir::SnapshotLine;

/// Smallest height of a picture, in pixels.
const MIN_HEIGHT: usize = 64;

/// The `mask/<slot>/sample<i>` and `salience/<slot>/sample<i>` pictures of
/// a snapshot (one tag per sample: TensorBoard keeps one picture per tag and
/// step).
pub fn snapshot_images(s: &SnapshotLine) -> anyhow::Result<[(String, Image); 2]> {
    let largest = s.salience.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mask = picture(s, &s.mask, |v| if v == 0.0 { 0 } else { 255 })?;
    let salience = picture(s, &s.salience, |v| {
        if largest > 0.0 {
            (255.0 * v.abs() / largest).round() as u8
        } else {
            0
        }
    })?;
    Ok([
        (format!("mask/{}/sample{}", s.slot, s.sample), mask),
        (format!("salience/{}/sample{}", s.slot, s.sample), salience),
    ])
}

fn picture(s: &SnapshotLine, values: &[f32], grey: impl Fn(f32) -> u8) -> anyhow::Result<Image> {
    let (maps, h, w) = (s.channels.len().max(1), s.height.max(1), s.width.max(1));
    let scale = MIN_HEIGHT.div_ceil(h).max(1);
    let width = maps * w * scale + (maps - 1);
    let height = h * scale;
    let mut img = GrayImage::from_pixel(width as u32, height as u32, Luma([128]));
    for (i, &v) in values.iter().enumerate().take(maps * h * w) {
        let (map, row, col) = (i / (h * w), i / w % h, i % w);
        let x0 = map * (w * scale + 1) + col * scale;
        for dy in 0..scale {
            for dx in 0..scale {
                img.put_pixel((x0 + dx) as u32, (row * scale + dy) as u32, Luma([grey(v)]));
            }
        }
    }
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, ImageFormat::Png)?;
    Ok(Image {
        height: height as u32,
        width: width as u32,
        colorspace: 1,
        png: png.into_inner(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_becomes_two_grey_pictures_of_its_maps() {
        let s = SnapshotLine {
            step: 5,
            slot: "block2".into(),
            sample: 0,
            channels: vec![0, 1],
            height: 2,
            width: 2,
            salience: vec![0.0, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0],
            mask: vec![1.5, 0.0, 1.5, 1.5, 0.0, 0.0, 1.5, 1.5],
            p: 0.1,
            tokens: Vec::new(),
        };
        let [(mask_tag, mask), (sal_tag, sal)] = snapshot_images(&s).unwrap();
        assert_eq!(
            (mask_tag.as_str(), sal_tag.as_str()),
            ("mask/block2/sample0", "salience/block2/sample0")
        );
        // 2 rows × 32 = 64 high; two 2-wide maps × 32 and a gap = 129 wide.
        assert_eq!((mask.height, mask.width), (64, 129));
        let decoded = image::load_from_memory(&mask.png).unwrap().to_luma8();
        assert_eq!(decoded.dimensions(), (129, 64));
        // Map 0, row 0: kept then dropped; the gap column is grey.
        assert_eq!(decoded.get_pixel(0, 0).0, [255]);
        assert_eq!(decoded.get_pixel(40, 0).0, [0]);
        assert_eq!(decoded.get_pixel(64, 0).0, [128]);
        let decoded = image::load_from_memory(&sal.png).unwrap().to_luma8();
        assert_eq!(decoded.get_pixel(0, 40).0, [128]); // 2 of 4
    }
}
