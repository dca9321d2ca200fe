"""The ``tinycnn`` command line: train, eval, predict, summary, models, demo, bench.

Every command has ``--help``.  A bad argument or input prints one line
``tinycnn <command>: error: ...`` and exits with code 2; Ctrl-C during
``train`` saves a checkpoint, says where, and exits with code 130.
"""

import argparse
import os
import sys

import numpy as np

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(Exception):
    """A bad argument or input: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _threads(args, image_shape=None):
    """Apply --threads; without it, use one thread for small images (<= 16x16), where each
    kernel call is microseconds of work and thread hand-offs cost more than they save."""
    from .threads import set_num_threads

    if getattr(args, "threads", None):
        set_num_threads(args.threads)
    elif image_shape is not None and image_shape[0] * image_shape[1] <= 256:
        set_num_threads(1)


# ------------------------------------------------------------------ commands


def _demo(args):
    from . import demo

    demo.run(epochs=args.epochs, seed=args.seed)
    return 0


def _train(args):
    from . import train
    from .models import list_models

    if args.resume is not None and not os.path.isfile(args.resume):
        raise UsageError(f"no such checkpoint: {args.resume}")
    if args.model is None:  # the default model, with its SE units unless --se says otherwise
        args.model, model_kwargs = train.DEFAULTS["model"], dict(train.DEFAULTS["model_kwargs"])
    elif args.model not in list_models():
        raise UsageError(f"unknown model {args.model!r}; `tinycnn models` lists them")
    else:
        model_kwargs = {}
    if args.se is not None:
        model_kwargs = {"se": True, "se_reduction": args.se} if args.se > 0 else {}
    if args.download:
        from .data import downloads

        if str(args.dataset).lower() not in downloads.DATASETS:
            raise UsageError(f"--download: {args.dataset!r} is not a downloadable dataset; "
                             f"known: {', '.join(sorted(downloads.DATASETS))}")
        try:
            downloads.download(str(args.dataset).lower())
        except (OSError, ValueError) as err:
            raise UsageError(f"--download: {err}") from None
    out = args.out
    if out is None:
        if args.resume is not None:
            out = os.path.dirname(os.path.abspath(args.resume))
        else:
            name = os.path.basename(os.path.normpath(str(args.dataset))) or "data"
            out = os.path.join("runs", f"{args.model}-{name}")
    config = dict(model=args.model, model_kwargs=model_kwargs, dataset=args.dataset, split=args.split,
                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                  weight_decay=args.weight_decay, augment=args.augment, seed=args.seed,
                  train_subset=args.train_subset, test_subset=args.test_subset)
    if args.resume is not None:  # the checkpoint holds the configuration
        config = {"epochs": args.epochs}
    try:
        trainer = train.Trainer(out, resume=args.resume, progress=not args.quiet, plot=not args.no_plot,
                                anomaly=args.detect_anomaly, **config)
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise UsageError(str(err)) from None
    _threads(args, trainer.meta["image_shape"])
    c = trainer.config
    print(f"training {c['model']} ({trainer.model.num_parameters():,} parameters) on {c['dataset']}: "
          f"{len(trainer.train_set)} train / {len(trainer.test_set)} test images, {c['epochs']} epochs, "
          f"batch {c['batch_size']}, {c['optimizer']} lr {c['lr']}; output in {out}", file=sys.stderr)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        print(f"\ninterrupted at epoch {trainer.epoch + 1}, step {trainer.step}; checkpoint saved to "
              f"{trainer.checkpoint_path}\nresume with: tinycnn train --resume {trainer.checkpoint_path}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except train.TrainingError as err:
        print(f"tinycnn train: error: {err}", file=sys.stderr)
        return 1
    last = trainer.history[-1]
    print(f"saved {trainer.checkpoint_path}, history.csv, history.json"
          + (", curves.png" if os.path.exists(os.path.join(out, "curves.png")) else ""), file=sys.stderr)
    print(f"test accuracy: {100 * last['test_acc']:.2f}% (test loss {last['test_loss']:.4f}) "
          f"after {last['epoch']} epochs")
    return 0


def _load_checkpoint(path):
    from . import train

    if not os.path.isfile(path):
        raise UsageError(f"no such checkpoint: {path}")
    try:
        return train.load_checkpoint(path)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _eval(args):
    from . import train

    ckpt = _load_checkpoint(args.checkpoint)
    model, meta = train.model_from_checkpoint(ckpt)
    _threads(args, meta["image_shape"])
    config = ckpt["config"]
    dataset = args.dataset if args.dataset is not None else config["dataset"]
    split = args.split if args.split is not None else (config["split"] if args.dataset is None else None)
    subset = config["test_subset"] if args.dataset is None else None
    try:
        _, test = train.load_datasets(dataset, split, None, subset)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    if tuple(test.image_shape) != tuple(meta["image_shape"]):
        raise UsageError(f"dataset images are {test.image_shape}, the model was trained on {tuple(meta['image_shape'])}")
    loss, acc = train.evaluate(model, test, meta, batch_size=args.batch_size)
    print(f"{meta['model']} on {dataset} test ({len(test)} images): accuracy {100 * acc:.2f}%, loss {loss:.4f}")
    return 0


def _resize(image, H, W, C, path):
    """An (H, W, C) float32 array in 0-255 units from an HWC/HW array of any size."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise UsageError(f"{path}: expected an image array (H, W) or (H, W, C), got shape {image.shape}")
    image = image.astype(np.float32)
    if image.shape[2] != C:
        if C == 1:
            image = image[..., :3].mean(axis=2, keepdims=True)
        elif image.shape[2] == 1:
            image = np.repeat(image, C, axis=2)
        else:
            raise UsageError(f"{path}: has {image.shape[2]} channels, the model expects {C}")
    if image.shape[:2] != (H, W):  # nearest-neighbour resize
        rows = (np.arange(H) * image.shape[0] / H).astype(int)
        cols = (np.arange(W) * image.shape[1] / W).astype(int)
        image = image[rows][:, cols]
    return image


def _read_image(path, H, W, C):
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    if path.lower().endswith(".npy"):
        from .npz import NpzError, read_npy

        try:
            array = read_npy(path)
        except NpzError as err:
            raise UsageError(f"{path}: not a readable .npy array: {err.reason}") from None
        if array.dtype.kind == "f" and array.size and array.min() >= 0.0 and array.max() <= 1.0:
            array = array * 255.0  # a float image in 0-1: bring to the 0-255 units of the training data
        return _resize(array, H, W, C, path)
    from .data.images import open_image

    try:
        with open_image(path) as img:
            from PIL import Image

            img = img.convert("L" if C == 1 else "RGB").resize((W, H), Image.BILINEAR)
            array = np.asarray(img)
    except ImportError:
        raise UsageError(f"{path}: reading image files needs Pillow (pip install 'tinycnn[image]'); "
                         ".npy arrays work without it") from None
    except ValueError as err:
        raise UsageError(str(err)) from None
    return _resize(array, H, W, C, path)


def _predict(args):
    from . import train

    ckpt = _load_checkpoint(args.checkpoint)
    model, meta = train.model_from_checkpoint(ckpt)
    _threads(args, meta["image_shape"])
    H, W, C = meta["image_shape"]
    images = np.stack([_read_image(p, H, W, C) for p in args.images])
    probs = train.predict_arrays(model, meta, images)
    for path, p in zip(args.images, probs):
        top = int(np.argmax(p))
        print(f"{path}: {meta['classes'][top]} ({100 * p[top]:.1f}%)")
    return 0


def _summary(args):
    from .models import create_model, list_models

    if args.model not in list_models():
        raise UsageError(f"unknown model {args.model!r}; `tinycnn models` lists them")
    H, W, C = args.input_shape
    try:
        model = create_model(args.model, num_classes=args.num_classes, in_chans=C)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    from .model_summary import summary

    print(summary(model, (H, W, C)))
    return 0


def _models(args):
    from .models import list_models

    for name in list_models():
        print(name)
    return 0


def _bench(argv):
    """``tinycnn bench ...`` = ``python -m bench ...``.  The benchmarks live in the
    source checkout (bench/ is not installed), next to this package's folder."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "bench", "cli.py")):
        print("tinycnn bench: error: the benchmarks are not installed with tinycnn; run `tinycnn bench` (or "
              "`python -m bench`) from a source checkout installed with `pip install -e .`", file=sys.stderr)
        return EXIT_USAGE
    if root not in sys.path:
        sys.path.insert(0, root)
    import bench.cli

    if os.path.dirname(os.path.dirname(os.path.abspath(bench.cli.__file__))) != root:
        print(f"tinycnn bench: error: `import bench` found {bench.cli.__file__}, not the checkout's "
              f"{root}/bench; run from the repository root", file=sys.stderr)
        return EXIT_USAGE
    return bench.cli.main(argv)


# ------------------------------------------------------------------ parser


def build_parser():
    parser = _Parser(prog="tinycnn", description="tinycnn: a CNN engine on NumPy and Numba.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser("demo", help="train a small CNN on generated images (about a minute)",
                               description="Train a small CNN on generated images and print its held-out accuracy.")
    demo.add_argument("--epochs", type=_positive_int, default=6, help="training epochs (default 6)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)

    from .checkpoint import DEFAULTS

    t = commands.add_parser(
        "train", help="train a model, evaluating on the test split every epoch",
        description="Train a registered model on a dataset. Writes checkpoint.npz (every epoch and on Ctrl-C), "
                    "history.csv, history.json and curves.png (needs matplotlib) under --out. With no arguments: "
                    "an SE-ResNet-20 on the bundled digits, about a minute or two.")
    t.add_argument("--model", default=None,
                   help=f"model name from `tinycnn models` (default {DEFAULTS['model']} with SE units, reduction "
                        f"{DEFAULTS['model_kwargs']['se_reduction']})")
    t.add_argument("--se", type=int, default=None, metavar="R",
                   help="add squeeze-and-excitation units of reduction R to a ResNet (0: none; default: "
                        "SE for the default model only)")
    t.add_argument("--dataset", default=DEFAULTS["dataset"],
                   help="dataset name (digits, mnist, fashion-mnist, kmnist, cifar10, cifar100) or a folder "
                        "(default digits, bundled)")
    t.add_argument("--download", action="store_true",
                   help="fetch a named dataset first (checksum-verified, into $TINYCNN_DATA or ~/.tinycnn/data)")
    t.add_argument("--split", type=_positive_int, default=None, metavar="N",
                   help="for a folder holding only a test set (e.g. MNIST t10k files): shuffle it with seed 0, "
                        "train on the first N images, test on the rest")
    t.add_argument("--epochs", type=_positive_int, default=None, help=f"epochs (default {DEFAULTS['epochs']})")
    t.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"batch size (default {DEFAULTS['batch_size']})")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help=f"peak learning rate (default {DEFAULTS['lr']} for sgd; use ~1e-3 for adam/adamw)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default=None,
                   help="sgd (Nesterov momentum 0.9, default), adam or adamw; cosine schedule with warm-up")
    t.add_argument("--weight-decay", type=float, default=None,
                   help=f"weight decay, not applied to BN parameters and biases (default {DEFAULTS['weight_decay']})")
    t.add_argument("--augment", choices=("crop", "crop-flip", "none"), default=None,
                   help="training augmentation (default crop: random crop after zero padding)")
    t.add_argument("--seed", type=int, default=None, help=f"random seed (default {DEFAULTS['seed']})")
    t.add_argument("--threads", type=_positive_int, default=None, help="threads for Numba and BLAS (default: all, or 1 for images of 16x16 or smaller)")
    t.add_argument("--train-subset", type=_positive_int, default=None, metavar="N",
                   help="train on N images only (a fixed random choice)")
    t.add_argument("--test-subset", type=_positive_int, default=None, metavar="N", help="test on N images only")
    t.add_argument("--out", default=None, help="output folder (default runs/<model>-<dataset>)")
    t.add_argument("--resume", default=None, metavar="PATH", help="continue from a checkpoint.npz")
    t.add_argument("--detect-anomaly", action="store_true",
                   help="check every operation for NaN/inf and name the first that produces one (slower)")
    t.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    t.add_argument("--quiet", action="store_true", help="no progress bar (one line per epoch)")
    t.set_defaults(run=_train)

    e = commands.add_parser("eval", help="evaluate a checkpoint on a test set",
                            description="Print the accuracy and loss of a checkpoint on a dataset's test split "
                                        "(by default the dataset it was trained on).")
    e.add_argument("checkpoint", help="a checkpoint.npz written by tinycnn train")
    e.add_argument("--dataset", default=None, help="dataset name or folder (default: the training dataset)")
    e.add_argument("--split", type=_positive_int, default=None, metavar="N", help="as for train")
    e.add_argument("--batch-size", type=_positive_int, default=256, help="batch size (default 256)")
    e.add_argument("--threads", type=_positive_int, default=None, help="threads for Numba and BLAS (default: all, or 1 for images of 16x16 or smaller)")
    e.set_defaults(run=_eval)

    p = commands.add_parser("predict", help="classify images with a checkpoint",
                            description="Print the top class and its probability for each image. Images are .npy "
                                        "arrays (H, W) or (H, W, C) in 0-255 units (float arrays within 0-1 are "
                                        "scaled by 255) or image files (needs Pillow); they are converted and "
                                        "resized to the checkpoint's image shape.")
    p.add_argument("checkpoint", help="a checkpoint.npz written by tinycnn train")
    p.add_argument("images", nargs="+", metavar="IMAGE", help=".npy or image files")
    p.add_argument("--threads", type=_positive_int, default=None, help="threads for Numba and BLAS (default: all, or 1 for images of 16x16 or smaller)")
    p.set_defaults(run=_predict)

    s = commands.add_parser("summary", help="print a model's layers, output shapes and parameter counts",
                            description="Print a table of a model's layers for a given input shape.")
    s.add_argument("model", help="model name from `tinycnn models`")
    s.add_argument("--input-shape", type=_positive_int, nargs=3, default=(32, 32, 3), metavar=("H", "W", "C"),
                   help="input height, width, channels (default 32 32 3)")
    s.add_argument("--num-classes", type=_positive_int, default=10, help="classes (default 10)")
    s.set_defaults(run=_summary)

    m = commands.add_parser("models", help="list the model names", description="List the registered model names.")
    m.set_defaults(run=_models)

    # listed for --help only: main() hands everything after `bench` to bench.cli
    commands.add_parser("bench", help="run the benchmarks (`tinycnn bench --help`; needs the source checkout)",
                        add_help=False)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 usage, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        try:
            return _bench(argv[1:])
        except SystemExit as exc:  # --help and argparse's own exits
            return exc.code if isinstance(exc.code, int) else 0
    parser, args = build_parser(), None
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return 0
        return args.run(args)
    except UsageError as err:
        message = str(err)
        if not message.startswith("tinycnn"):
            message = f"tinycnn {getattr(args, 'command', '')}: error: {message}".replace("  ", " ")
        print(message.splitlines()[0] if message else "tinycnn: error", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and argparse's own exits
        return exc.code if isinstance(exc.code, int) else 0

if __name__ == "__main__":
    sys.exit(main())
