"""The storefront shape of examples/storefront/: stock at storefronts, explained by fulfilled transfers."""

from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)


class StockProduct(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.IntegerField()


class StorefrontInventory(models.Model):
    """The cached figure: what a storefront holds of a product."""

    storefront_id = models.IntegerField()
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.IntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["storefront_id", "product"], name="one_row_per_item")]  # noqa: RUF012


class TransferRequest(models.Model):
    storefront_id = models.IntegerField()
    status = models.CharField(max_length=16)


class TransferRequestLineItem(models.Model):
    """The records: once its request is FULFILLED, a line item's quantity is at the storefront."""

    request = models.ForeignKey(TransferRequest, on_delete=models.CASCADE, related_name="line_items")
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    requested_quantity = models.IntegerField()
