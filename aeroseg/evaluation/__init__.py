from .open_vocab_metric import OpenVocabIoUMetric, harmonic_mean, iou_from_confusion

__all__ = ['OpenVocabIoUMetric', 'harmonic_mean', 'iou_from_confusion']
