"""Benign everyday instructions written for deepguard: the utility anchors of safety training.

Answers are not stored: `deepguard data build` distils them from the model being aligned, so
training keeps the model's own helpful behaviour. A share of the prompts use words that sound
alarming but are harmless ("kill a process", "shoot a photo"), to teach that words alone are not
a reason to refuse.
"""

from __future__ import annotations

WRITING = [
    "Write a short poem about autumn leaves falling in a park.",
    "Write a thank-you note to a neighbour who watered my plants while I was away.",
    "Draft a polite email asking my manager for a day off next Friday.",
    "Write a two-sentence horror story set in a library.",
    "Give me three catchy names for a small bakery that sells sourdough.",
    "Write a haiku about morning coffee.",
    "Summarise the plot of a story where a lost dog finds its way home, in three sentences.",
    "Write a short product description for a reusable water bottle.",
    "Help me write a birthday message for my grandmother who is turning 90.",
    "Write a limerick about a cat who loves boxes.",
    "Write an opening line for a mystery novel set on a train.",
    "Rewrite this sentence to sound more formal: 'Hey, can you send me the file soon?'",
    "Write a short speech to welcome new volunteers at a food bank.",
    "Write a cover letter opening paragraph for a junior graphic designer position.",
    "Create a short bedtime story about a turtle who wants to fly.",
    "Write a friendly reminder message for a book club meeting on Thursday.",
    "Write a four-line poem about the ocean at night.",
    "Suggest a title for a blog post about learning to cook at home.",
    "Write a short review of a fictional Italian restaurant with great pasta.",
    "Write a motivational quote for students during exam week.",
    "Write a short apology message for missing a friend's party.",
    "Write a toast for my best friend's wedding, about one minute long.",
    "Describe a sunrise over the mountains in vivid language.",
    "Write a short dialogue between a barista and a sleepy customer.",
    "Write an out-of-office reply for a two-week holiday.",
    "Write a short LinkedIn post announcing that I finished a data science course.",
    "Write a riddle whose answer is 'a shadow'.",
    "Write a slogan for a campaign encouraging people to recycle.",
    "Write a short fable with a moral about patience.",
    "Write a paragraph describing a busy farmers' market.",
    "Write a short letter to my future self to open in ten years.",
    "Write the first paragraph of a fantasy story about a dragon who is afraid of fire.",
    "Write a short invitation for a neighbourhood picnic.",
    "Write an acrostic poem using the word 'SPRING'.",
    "Write a short note to a teacher thanking them for their help this year.",
    "Turn this into a catchy tweet: our library now opens on Sundays.",
    "Write a short description of a cosy reading nook.",
    "Write three interview questions for a podcast about gardening.",
    "Write a short story in which the twist is that the narrator is a houseplant.",
    "Write a kind message to a coworker who is leaving the company.",
]

CODING = [
    "Write a Python function that checks whether a string is a palindrome.",
    "How do I reverse a list in Python?",
    "Explain the difference between a list and a tuple in Python.",
    "Write a SQL query that counts the number of orders per customer.",
    "How do I read a CSV file with pandas?",
    "Write a JavaScript function that returns the largest number in an array.",
    "What does 'git rebase' do, in simple terms?",
    "Write a Python function to compute the factorial of a number recursively.",
    "How can I remove duplicate items from a list in Python while keeping the order?",
    "Explain what a REST API is to a beginner.",
    "Write a bash one-liner that counts the lines in all .txt files in a folder.",
    "What is the difference between '==' and 'is' in Python?",
    "How do I kill a process that is using port 8080 on Linux?",
    "Write a Python class representing a bank account with deposit and withdraw methods.",
    "Explain Big-O notation with a simple example.",
    "How do I create a virtual environment in Python?",
    "Write a regular expression that matches a simple email address.",
    "What is a race condition and how can I avoid one?",
    "How do I terminate all child processes when my Python script exits?",
    "Write a function in Python that merges two sorted lists into one sorted list.",
    "Explain what recursion is using a real-life analogy.",
    "How do I undo the last commit in git without losing my changes?",
    "Write a Python script that prints the numbers from 1 to 100, but prints 'Fizz' for multiples of 3 and 'Buzz' for multiples of 5.",
    "What is the difference between HTTP GET and POST?",
    "How do I sort a dictionary by its values in Python?",
    "Explain what a hash table is and why lookups are fast.",
    "Write a CSS rule that centres a div horizontally and vertically.",
    "How do I handle exceptions in Python? Give a short example.",
    "What does the 'async' keyword do in JavaScript?",
    "Write a function that counts how many times each word appears in a text.",
    "How do I execute a shell command from Python and capture its output?",
    "Explain the difference between a process and a thread.",
    "Write a unit test in pytest for a function that adds two numbers.",
    "How do I format a date as YYYY-MM-DD in Python?",
    "What is a memory leak and how can I find one?",
    "Write a Python generator that yields the Fibonacci numbers.",
    "How can I make my slow SQL query faster?",
    "Explain what Docker containers are in two paragraphs.",
    "How do I strip whitespace from the beginning and end of a string in JavaScript?",
    "Write a function to check whether a number is prime.",
]

MATH = [
    "What is 15% of 240?",
    "Solve for x: 3x + 7 = 22.",
    "What is the area of a circle with a radius of 5 cm?",
    "Convert 72 degrees Fahrenheit to Celsius.",
    "If a train travels 180 km in 2 hours, what is its average speed?",
    "What is the sum of the angles in a triangle?",
    "Explain what a prime number is and list the primes below 30.",
    "What is the square root of 144?",
    "A shirt costs $40 and is on sale for 25% off. What is the sale price?",
    "How many seconds are there in a day?",
    "What is the probability of rolling a six on a fair die?",
    "Simplify the fraction 18/24.",
    "What is 7 factorial?",
    "Explain the Pythagorean theorem with an example.",
    "If I save $50 a week, how much will I have after a year?",
    "What is the derivative of x squared?",
    "Calculate the average of 12, 15, 20 and 33.",
    "How many centimetres are there in 3.5 metres?",
    "What is the next number in the sequence 2, 4, 8, 16?",
    "Explain the difference between mean, median and mode.",
    "What is 2 to the power of 10?",
    "A recipe needs 3 eggs for 12 cookies. How many eggs do I need for 30 cookies?",
    "What is the perimeter of a rectangle that is 8 m long and 3 m wide?",
    "Convert 0.375 to a fraction.",
    "If an investment grows by 5% per year, how much is $1000 worth after 2 years?",
    "What is the least common multiple of 4 and 6?",
    "How do I calculate compound interest?",
    "What is 1000 divided by 8?",
    "Explain what a logarithm is in simple words.",
    "How many ways can I arrange the letters A, B and C?",
]

ADVICE = [
    "How can I fall asleep faster at night?",
    "Give me tips for staying focused while working from home.",
    "What are some healthy snacks I can take to work?",
    "How do I prepare for a job interview?",
    "What is a good way to start running if I've never exercised?",
    "How can I save money on groceries?",
    "How do I politely say no to extra work at my job?",
    "What should I pack for a weekend hiking trip?",
    "How can I make my small apartment feel bigger?",
    "Give me tips for learning a new language as an adult.",
    "How can I keep my houseplants alive?",
    "How do I deal with stress before an exam?",
    "What are good habits for keeping my email inbox under control?",
    "How can I make new friends after moving to a new city?",
    "What is a simple weekly meal-prep plan for a busy person?",
    "How do I kill weeds in my garden without using chemicals?",
    "How can I get rid of fruit flies in my kitchen?",
    "How do I clean a cast iron pan?",
    "What should I look for when buying a used car?",
    "How can I improve my public speaking?",
    "How do I start a budget for the first time?",
    "What are some ways to reduce my screen time?",
    "How do I remove a red wine stain from a carpet?",
    "How can I help my child with their homework without doing it for them?",
    "How do I ask for a raise?",
    "What is the best way to store fresh herbs?",
    "How can I be more productive in the morning?",
    "How do I train my puppy to stop biting?",
    "What are some fun activities for a rainy day with kids?",
    "How should I prepare for a long flight?",
    "How do I shoot better photos with my phone?",
    "How can I stop procrastinating?",
    "How do I pick a good watermelon at the store?",
    "What are some tips for writing a strong resume?",
    "How do I handle a disagreement with a roommate calmly?",
    "What should I do if my laptop is running slowly?",
    "How do I blow out a stubborn candle flame on a tall candle safely?",
    "How can I make my bread rise better?",
    "How can I execute my project plan more effectively as a team lead?",
    "How can I beat my personal best time in a 5k race?",
]

FACTS = [
    "Why is the sky blue?",
    "How do vaccines train the immune system?",
    "What causes the seasons on Earth?",
    "Explain how photosynthesis works.",
    "Who wrote 'Pride and Prejudice'?",
    "What is the capital of Australia?",
    "How does a rainbow form?",
    "What is the difference between weather and climate?",
    "How do airplanes stay in the air?",
    "What is inflation in economics?",
    "Why do cats purr?",
    "How does the internet send data from one computer to another?",
    "What is DNA?",
    "Explain the water cycle.",
    "What are black holes?",
    "How do bees make honey?",
    "What was the Renaissance?",
    "Why do we have leap years?",
    "How does a refrigerator keep food cold?",
    "What is the largest planet in our solar system?",
    "How do volcanoes erupt?",
    "What is the theory of evolution?",
    "Why does ice float on water?",
    "What is machine learning, in simple terms?",
    "How do solar panels generate electricity?",
    "What is the difference between a virus and a bacterium?",
    "Who was Marie Curie?",
    "What causes earthquakes?",
    "How does the heart pump blood?",
    "Why do leaves change colour in autumn?",
    "What is the speed of light?",
    "How do tides work?",
    "What is a haiku?",
    "How did the ancient Egyptians build the pyramids, according to historians?",
    "What is the function of the ozone layer?",
    "How does a compass work?",
    "What is the difference between an atom and a molecule?",
    "Why do we dream?",
    "How does a credit score work?",
    "What are the main causes of the First World War?",
    "What does a nuclear power plant do, in simple terms?",
    "How do antibiotics work, and why shouldn't they be used for viruses?",
    "Why is the Dead Sea so salty?",
    "How do noise-cancelling headphones work?",
    "What were the main achievements of the Roman Empire?",
]

# Short everyday tasks composed from a verb and a subject, for breadth of topics.
_EXPLAIN_TOPICS = [
    "how a bicycle gear works", "why bread goes stale", "how a library catalogue is organised",
    "what a mortgage is", "how to read a nutrition label", "what an index fund is",
    "how composting works", "what a carbon footprint is", "how an election is counted",
    "what a sonnet is", "how a thermostat works", "what jet lag is",
    "how to change a flat tyre", "how coffee is roasted", "what a time zone is",
    "how glasses correct vision", "what the stock market is", "how a microwave heats food",
    "why the moon has phases", "what a spreadsheet formula is",
]
_LIST_TOPICS = [
    "board games for a family night", "vegetables that grow well in pots", "classic novels for teenagers",
    "ways to reuse glass jars", "breakfast ideas without eggs", "stretches to do at a desk",
    "questions to ask on a first date", "cheap hobbies to try this year", "ways to cool a room without air conditioning",
    "podcast topics about history", "gift ideas for a coworker", "tips for a tidy closet",
    "songs for a road trip", "ways to practise gratitude", "kid-friendly science experiments",
    "ideas for a vegetarian dinner party", "ways to learn to type faster", "free museum activities",
    "indoor plants that need little light", "ways to make a long walk more interesting",
]
_TRANSLATE = [
    ("Good morning, how are you?", "Spanish"), ("Where is the train station?", "French"),
    ("Thank you for your help.", "German"), ("I would like a cup of tea.", "Italian"),
    ("The weather is nice today.", "Portuguese"), ("What time does the shop close?", "Spanish"),
    ("Happy birthday!", "French"), ("Can you recommend a good restaurant?", "German"),
    ("I am learning to cook.", "Italian"), ("See you tomorrow.", "Japanese"),
]
_POEM_SUBJECTS = [
    "a rainy bus stop", "an old lighthouse", "a kitten's first snow", "a grandmother's kitchen", "city lights at 3 a.m.",
    "a forgotten umbrella", "the first day of school", "a quiet lake", "a marathon finish line", "a garden in July",
    "a paper boat", "a lost key", "the smell of fresh bread", "a long train journey", "a winter fireplace",
]
_RECIPES = [
    "tomato soup", "banana bread", "vegetable stir-fry", "pancakes", "guacamole", "lentil curry", "a green salad",
    "oatmeal cookies", "scrambled tofu", "lemonade", "roasted potatoes", "hummus", "fried rice", "a fruit smoothie",
    "mushroom risotto",
]
_PROS_CONS = [
    "working from home", "electric cars", "renting versus buying a home", "learning to code at school",
    "living in a big city", "getting a dog", "using a standing desk", "e-books versus paper books",
    "taking a gap year", "public transport", "freelancing", "solar panels on a house", "online classes",
    "a four-day work week", "buying second-hand clothes",
]
_HOW_TO = [
    "tie a tie", "boil an egg perfectly", "plant tulip bulbs", "iron a shirt", "write a haiku", "make a paper airplane",
    "sharpen a kitchen knife safely", "back up my phone", "set up a fish tank", "fold a fitted sheet",
    "start journaling", "clean my keyboard", "wrap a gift neatly", "brew green tea", "hang a picture frame straight",
]


def benign_prompts() -> list[str]:
    """All packaged benign prompts, in a fixed order (callers shuffle with their own seed)."""
    composed = (
        [f"Explain {topic}." for topic in _EXPLAIN_TOPICS]
        + [f"Give me a short list of {topic}." for topic in _LIST_TOPICS]
        + [f"Translate into {language}: '{text}'" for text, language in _TRANSLATE]
        + [f"Write a short poem about {subject}." for subject in _POEM_SUBJECTS]
        + [f"Give me a simple recipe for {dish}." for dish in _RECIPES]
        + [f"What are the pros and cons of {topic}?" for topic in _PROS_CONS]
        + [f"How do I {task}?" for task in _HOW_TO]
    )
    prompts = WRITING + CODING + MATH + ADVICE + FACTS + composed
    # Duplicates would silently over-weight a prompt.
    seen: set[str] = set()
    unique = []
    for prompt in prompts:
        if prompt not in seen:
            seen.add(prompt)
            unique.append(prompt)
    return unique
