//! The notebook's networks by name, for command lines.
use std::fmt;
use std::str::FromStr;

/// One of the notebook's four networks, or the residual network that
/// follows them, chosen at run time (the types are
/// [`LeNetClass`](super::LeNetClass), [`LeNetSeq`](super::LeNetSeq),
/// [`LeNet5`](super::LeNet5), [`Mlp`](super::Mlp) and
/// [`MnistResNet`](super::MnistResNet)).
///
/// ```
/// use static_nn::models::NotebookModel;
/// let m: NotebookModel = "lenet-seq".parse().unwrap();
/// assert_eq!(m, NotebookModel::LeNetSeq);
/// assert_eq!(m.to_string(), "lenet-seq");
/// assert_eq!("resnet".parse::<NotebookModel>().unwrap(), NotebookModel::ResNet);
/// assert!("vgg".parse::<NotebookModel>().unwrap_err().contains("lenet5"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotebookModel {
    /// `lenet`: the class LeNet (ReLU, max pool, 400 → 84 → 10).
    LeNet,
    /// `lenet-seq`: the `nn.Sequential` LeNet (max pool, then avg pool).
    LeNetSeq,
    /// `lenet5`: LeNet-5 (1998), sigmoid and avg pool, 400 → 120 → 84 → 10.
    LeNet5,
    /// `mlp`: the MLP, 784 → 128 → 10.
    Mlp,
    /// `resnet`: [`MnistResNet`](super::MnistResNet), three residual stages
    /// with batch norm, global average pooling and dropout.
    ResNet,
}

impl NotebookModel {
    /// All five: the notebook's four in its order of appearance, then the ResNet.
    pub const ALL: [NotebookModel; 5] = [
        Self::Mlp,
        Self::LeNet,
        Self::LeNetSeq,
        Self::LeNet5,
        Self::ResNet,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::LeNet => "lenet",
            Self::LeNetSeq => "lenet-seq",
            Self::LeNet5 => "lenet5",
            Self::Mlp => "mlp",
            Self::ResNet => "resnet",
        }
    }
}

impl fmt::Display for NotebookModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NotebookModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|m| m.name()).collect();
                format!("unknown model `{s}`; expected one of: {}", names.join(", "))
            })
    }
}

/// Any of the library's networks by name, for the general `train` example:
/// the five MNIST-sized ones of [`NotebookModel`] and `cifar-resnet20`
/// ([`CifarResNet20`](super::CifarResNet20), 3×32×32).
///
/// ```
/// use static_nn::models::ModelName;
/// let m: ModelName = "cifar-resnet20".parse().unwrap();
/// assert_eq!(m.image(), (3, 32, 32));
/// assert_eq!("lenet".parse::<ModelName>().unwrap().image(), (1, 28, 28));
/// assert!("vgg".parse::<ModelName>().unwrap_err().contains("cifar-resnet20"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelName {
    /// One of the MNIST-sized networks.
    Notebook(NotebookModel),
    /// `cifar-resnet20`: ResNet-20 for 3×32×32 images.
    CifarResNet20,
}

impl ModelName {
    /// All six, the MNIST-sized ones first.
    pub fn all() -> Vec<ModelName> {
        let mut v: Vec<ModelName> = NotebookModel::ALL.into_iter().map(Self::Notebook).collect();
        v.push(Self::CifarResNet20);
        v
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Notebook(m) => m.name(),
            Self::CifarResNet20 => "cifar-resnet20",
        }
    }

    /// The image the network takes, `(channels, height, width)`.
    pub fn image(self) -> (usize, usize, usize) {
        match self {
            Self::Notebook(_) => (1, 28, 28),
            Self::CifarResNet20 => (3, 32, 32),
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::all()
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::all().iter().map(|m| m.name()).collect();
                format!("unknown model `{s}`; expected one of: {}", names.join(", "))
            })
    }
}
