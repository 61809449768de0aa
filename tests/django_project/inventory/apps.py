from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self) -> None:
        from inventory.models import TransferRequest, TransferRequestLineItem
        from trueup.contrib.django import keep_true

        # A line item changes the storefront figure of its request's storefront and its product;
        # a request's status changes that of each of its line items.
        keep_true(
            sender=TransferRequestLineItem,
            rule="storefront",
            key=lambda item: (item.request.storefront_id, item.product_id),
        )
        keep_true(
            sender=TransferRequest,
            rule="storefront",
            key=lambda request: [(request.storefront_id, item.product_id) for item in request.line_items.all()],
        )
