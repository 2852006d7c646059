"""The chat page at GET / in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium): the page
loads, shows the model, and a question gets a streamed answer."""
import shutil
import unittest

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from server import Server


class ChatPageTest(unittest.TestCase):
    def test_question_gets_streamed_answer(self):
        driver_path = shutil.which("chromedriver")
        self.assertIsNotNone(driver_path, "chromedriver not found (Debian: chromium-driver; scripts/deps installs it)")
        s = Server("runtime.max_seqs=2", "server.model_name=smol")
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
            opts.add_argument(a)
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
        try:
            driver.get(s.url + "/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_element(By.ID, "model").text == "smol")
            driver.find_element(By.ID, "prompt").send_keys("What is the capital of France?")
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant[data-done='1']"))
            answer = driver.find_element(By.CSS_SELECTOR, ".assistant").text
            self.assertIn("Paris", answer)
            self.assertEqual(driver.find_element(By.CSS_SELECTOR, ".user").text, "What is the capital of France?")
            # the page, /v1/models, the question (counted once its last byte is out, which the page may see first)
            self.assertTrue(s.wait_metric('imp_requests_total{status="200"}', 3), s.metrics())
            self.assertGreater(s.metrics()["imp_generation_tokens_total"], 1)
        finally:
            driver.quit()
            s.stop()


if __name__ == "__main__":
    unittest.main()
