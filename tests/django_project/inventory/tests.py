"""keep_true() through Django's own test machinery (run by tests/test_django.py as `manage.py test inventory`).

TransactionTestCase, not TestCase: on_commit callbacks need real commits, and trueup syncs over
connections of its own, which see only committed rows.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.test import TransactionTestCase

import trueup
from inventory.models import Product, StorefrontInventory, TransferRequest, TransferRequestLineItem
from trueup.contrib.django import keep_true, synced
from trueup.contrib.django.database import database_url
from trueup.reconcile.sync import rule_lock


class KeepTrueTests(TransactionTestCase):
    def setUp(self) -> None:
        self.syncs: list[dict[str, Any]] = []
        synced.connect(self._record, weak=False, dispatch_uid="test")
        self.addCleanup(synced.disconnect, dispatch_uid="test")
        self.product = Product.objects.create(name="lamp")
        self.first = TransferRequest.objects.create(storefront_id=1, status="FULFILLED")
        self.second = TransferRequest.objects.create(storefront_id=2, status="FULFILLED")
        for storefront in (1, 2):
            StorefrontInventory.objects.create(storefront_id=storefront, product=self.product, quantity=0)
        self.syncs.clear()

    @classmethod
    def tearDownClass(cls) -> None:
        trueup.close()  # PostgreSQL drops the test database only when no connection is left on it
        super().tearDownClass()

    def _record(self, sender: Any, **sent: Any) -> None:
        self.syncs.append(sent)

    def stock(self) -> dict[int, int]:
        return dict(StorefrontInventory.objects.values_list("storefront_id", "quantity"))

    def test_a_save_that_leaves_drift_is_repaired_after_commit(self) -> None:
        with transaction.atomic():
            TransferRequestLineItem.objects.create(request=self.first, product=self.product, requested_quantity=5)
            self.assertEqual(self.syncs, [])  # nothing before the commit
        self.assertEqual(self.stock(), {1: 5, 2: 0})
        [done] = self.syncs
        outcome = (done["keys"], done["result"].status, done["result"].corrected)
        self.assertEqual(outcome, ([(1, self.product.id)], "corrected", 1))

    def test_a_rolled_back_transaction_syncs_nothing(self) -> None:
        StorefrontInventory.objects.filter(storefront_id=1).update(quantity=7)  # drift a sync would repair
        with self.assertRaises(RuntimeError), transaction.atomic():
            TransferRequestLineItem.objects.create(request=self.first, product=self.product, requested_quantity=5)
            raise RuntimeError("the sale failed")
        self.assertEqual((self.syncs, self.stock()), ([], {1: 7, 2: 0}))

    def test_a_rolled_back_savepoint_syncs_nothing_of_it(self) -> None:
        with transaction.atomic():
            TransferRequestLineItem.objects.create(request=self.first, product=self.product, requested_quantity=5)
            with self.assertRaises(RuntimeError), transaction.atomic():
                TransferRequestLineItem.objects.create(request=self.second, product=self.product, requested_quantity=9)
                raise RuntimeError("this part failed")
        self.assertEqual([done["keys"] for done in self.syncs], [[(1, self.product.id)]])
        self.assertEqual(self.stock(), {1: 5, 2: 0})

    def test_a_line_item_moved_between_requests_syncs_both_keys(self) -> None:
        item = TransferRequestLineItem.objects.create(request=self.first, product=self.product, requested_quantity=4)
        self.assertEqual(self.stock(), {1: 4, 2: 0})
        self.syncs.clear()
        item.request = self.second
        item.save()
        self.assertEqual(self.stock(), {1: 0, 2: 4})
        [done] = self.syncs
        self.assertEqual(done["keys"], [(1, self.product.id), (2, self.product.id)])

    def test_a_delete_syncs_the_key_it_had(self) -> None:
        item = TransferRequestLineItem.objects.create(request=self.first, product=self.product, requested_quantity=4)
        item.delete()
        self.assertEqual(self.stock(), {1: 0, 2: 0})
        self.assertEqual([done["result"].status for done in self.syncs], ["corrected", "corrected"])

    def test_a_status_change_syncs_every_key_of_the_request(self) -> None:
        pending = TransferRequest.objects.create(storefront_id=2, status="PENDING")
        TransferRequestLineItem.objects.create(request=pending, product=self.product, requested_quantity=3)
        self.assertEqual(self.stock(), {1: 0, 2: 0})  # pending: nothing at the storefront yet
        pending.status = "FULFILLED"
        pending.save()
        self.assertEqual(self.stock(), {1: 0, 2: 3})

    def test_a_failing_sync_is_logged_and_never_raised(self) -> None:
        hook = keep_true(sender=Product, rule="no-such-rule", key=lambda product: (1, product.id))
        self.addCleanup(hook.disconnect)
        with self.assertLogs("trueup.contrib.django.hooks", "ERROR") as logged:
            Product.objects.create(name="desk")  # the save itself succeeds
        self.assertIn("sync of rule 'no-such-rule'", logged.output[0])
        self.assertIn("no rule named 'no-such-rule'", logged.output[0])
        [failed] = self.syncs
        self.assertIsNone(failed["result"])

    def test_a_sync_meeting_a_running_round_reports_it(self) -> None:
        engine = trueup._engine(database_url(connection.alias))
        with rule_lock(engine, "storefront", 0) as held, self.assertLogs("trueup.contrib.django") as logged:
            self.assertTrue(held)
            TransferRequestLineItem.objects.create(request=self.first, product=self.product, requested_quantity=5)
        [done] = self.syncs
        self.assertEqual(done["result"].status, "queued")
        self.assertIn("a round of the rule is running", logged.output[0])
        self.assertEqual(self.stock(), {1: 0, 2: 0})
