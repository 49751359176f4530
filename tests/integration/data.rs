//! The committed Fashion-MNIST subset reads back as the Debian set it was cut from.

use crate::common::repo_root;
use probdrop_tui::train::idx::{load_image_set, split_files};

#[test]
fn the_committed_fashion_mnist_subset_loads() {
    let dir = repo_root().join("data/fashion-mnist-subset");
    let (images, labels) = split_files(&dir, "train").unwrap();
    let train = load_image_set(&images, &labels).unwrap();
    assert_eq!((train.len(), train.rows, train.cols), (6000, 28, 28));
    let mut per_class = [0usize; 10];
    for &l in &train.labels {
        per_class[l as usize] += 1;
    }
    assert!(
        per_class.iter().all(|&n| (500..700).contains(&n)),
        "{per_class:?}"
    );
    // Values read off the same bytes by cut.py's Python: first image is an ankle
    // boot (9) whose pixels sum to 76247.
    assert_eq!(train.labels[0], 9);
    assert_eq!(train.image(0).iter().map(|&p| p as u64).sum::<u64>(), 76247);

    let (images, labels) = split_files(&dir, "t10k").unwrap();
    let test = load_image_set(&images, &labels).unwrap();
    assert_eq!(test.len(), 1000);
    assert!(
        split_files(&dir, "valid")
            .unwrap_err()
            .to_string()
            .contains("no valid images file")
    );
}
