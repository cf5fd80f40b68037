// A tuple network whose first layer does not fix the image's height and
// width cannot be trained by a Classifier until it declares its image.
use static_nn::prelude::*;
use static_nn::train::{Classifier, OptimizerConfig};

type Net = (Conv2D<1, 4, 3>, ReLU, Flatten, Linear<2704, 10>);

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<Net, f32>();
    let loader = static_nn::data::DataLoader::new(
        std::sync::Arc::new(static_nn::data::LabelledImages::new(28, 28, vec![], vec![]).unwrap()),
        Default::default(),
    );
    let mut clf = Classifier::new(model, dev, OptimizerConfig::sgd(0.1));
    clf.fit(&loader, 1).unwrap();
}
