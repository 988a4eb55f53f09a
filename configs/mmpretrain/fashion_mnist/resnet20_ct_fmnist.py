# Conventional training (CT) of the Fashion-MNIST ResNet-20; validation also
# reports sub-network accuracies (the loafing view).
_base_ = ['../_base_/fashion_mnist_resnet20.py']
